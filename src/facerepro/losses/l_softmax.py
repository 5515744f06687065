"""L-Softmax (large-margin softmax) loss (Liu, Wen, Yu, Yang, ICML 2016).

The classifier keeps its raw, unnormalised weights and has no bias; the target logit gets a
multiplicative angular margin m (Eq. 4-6):

    L_i = -log( e^{||W_{y_i}|| ||x_i|| psi(theta_{y_i})}
                / (e^{||W_{y_i}|| ||x_i|| psi(theta_{y_i})}
                   + sum_{j != y_i} e^{||W_j|| ||x_i|| cos(theta_j)}) )

    psi(theta) = (-1)^k cos(m theta) - 2k,   theta in [k pi/m, (k+1) pi/m],  k = 0..m-1

The released code anneals exactly as SphereFace's later did,

    f_{y_i} = (lambda ||W_{y_i}|| ||x_i|| cos(theta_{y_i}) + ||W_{y_i}|| ||x_i|| psi(theta_{y_i}))
              / (1 + lambda),
    lambda  = max(lambda_min, base * (1 + gamma * iter)^(-power)),

so psi, the target and the schedule are those of :mod:`facerepro.losses.a_softmax`; the only
difference from A-Softmax is that ||W_j|| stays in the logits (SphereFace Table 4 compares the
two on the same network).
"""

from __future__ import annotations

from facerepro.losses.a_softmax import MultiplicativeMarginLoss


class LSoftmaxLoss(MultiplicativeMarginLoss):
    """L-Softmax: unnormalised class weights, no bias, margin m. ``anneal=False`` means
    lambda = 0 (the pure L-Softmax target)."""

    normalize_weights = False
