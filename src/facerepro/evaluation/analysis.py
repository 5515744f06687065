"""The papers' feature analyses, on plain numpy arrays (no model code).

Sparsity (DeepID2+, Sec. 5, Fig. 7). For activations ``a`` of shape (N images, D neurons), a
neuron is active on an image when ``a > threshold`` (0 for post-ReLU features):

    per_image[n]  = #{d : a[n, d] > threshold}   (the paper: 292 +- 34 of 512)
    per_neuron[d] = #{n : a[n, d] > threshold}   (the paper: 26,565 +- 5,754 of 46,594)

Standard deviations are population ones (ddof = 0). Binarization (Sec. 6.1, Table 4) keeps
only that pattern: ``bit = uint8(a > 0)``, scored with Hamming distance or Joint Bayesian.

Single-neuron selectiveness (DeepID2+, Sec. 6, Figs. 9-10, 11-12). For each target (one
identity, or one binary attribute) against the rest and each neuron ``d``, the best balanced
accuracy of the classifier "target iff a[:, d] > t" or "target iff a[:, d] <= t" over every
threshold ``t``:

    acc[target, d] = max_t max(B(t), 1 - B(t)),  B(t) = (TPR(t) + TNR(t)) / 2.

Balanced accuracy because one-vs-rest is very unbalanced (plain accuracy would reward calling
everything "rest"); the paper normalises its accuracies by the positive and negative counts in
the same way. Both directions count because the paper's neurons are selective by excitation
*or* inhibition; the low-side classifier scores exactly ``1 - B(t)``. The threshold is the best
one on the given images (in-sample), so the values are an upper bound on held-out accuracy.

Angular Fisher score (SphereFace, Sec. 4.5 / Table 6), lower is better:

    AFS = S_w / S_b,
    S_w = sum_i sum_{x in class i} (1 - cos(x, m_i)),   S_b = sum_i n_i (1 - cos(m_i, m)),

with ``m_i`` the mean of class i's feature vectors and ``m`` the mean of all of them, taken on
the features as given (no normalisation first, as the formula is written). Scaling every
feature by one positive constant leaves AFS unchanged; rescaling single vectors does not,
because it moves the means.
"""

from __future__ import annotations

import numpy as np


def _as_matrix(activations: np.ndarray) -> np.ndarray:
    a = np.asarray(activations)
    if a.ndim != 2:
        raise ValueError(f"activations must be (N images, D neurons), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("activations contain NaN or inf")
    return a


# --- sparsity (DeepID2+ Fig. 7) ---------------------------------------------------------------

def active_counts(activations: np.ndarray,
                  threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(per_image (N,), per_neuron (D,)): active neurons per image, active images per neuron."""
    active = _as_matrix(activations) > threshold
    return active.sum(axis=1), active.sum(axis=0)


def sparsity_summary(activations: np.ndarray, threshold: float = 0.0) -> dict[str, float]:
    """Means and population stds of both counts, also as fractions of D and N (Fig. 7 text)."""
    per_image, per_neuron = active_counts(activations, threshold)
    n_images, n_neurons = len(per_image), len(per_neuron)
    return {
        "n_images": n_images,
        "n_neurons": n_neurons,
        "per_image_mean": float(per_image.mean()),
        "per_image_std": float(per_image.std()),
        "per_image_fraction": float(per_image.mean() / n_neurons),
        "per_neuron_mean": float(per_neuron.mean()),
        "per_neuron_std": float(per_neuron.std()),
        "per_neuron_fraction": float(per_neuron.mean() / n_images),
    }


def sparsity_histograms(activations: np.ndarray, threshold: float = 0.0,
                        bins: int = 32) -> dict[str, dict[str, np.ndarray]]:
    """Fig. 7 histograms: ``{"per_image"|"per_neuron": {"edges": (bins+1,), "counts": (bins,)}}``.

    Edges span the whole possible range, [0, D] and [0, N], not the observed one, so that the
    histograms of different nets and layers share their axes and "about half" sits mid-plot.
    The last bin is closed on the right (numpy's rule), so a count of D or N is included.
    """
    per_image, per_neuron = active_counts(activations, threshold)
    out = {}
    for name, counts, top in (("per_image", per_image, len(per_neuron)),
                              ("per_neuron", per_neuron, len(per_image))):
        edges = np.linspace(0.0, float(top), bins + 1)
        out[name] = {"edges": edges, "counts": np.histogram(counts, bins=edges)[0]}
    return out


def binarize(features: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """uint8 bits ``features > threshold``: the excitation pattern of DeepID2+ Table 4."""
    return (np.asarray(features) > threshold).astype(np.uint8)


# --- single-neuron selectiveness (DeepID2+ Figs. 9-10) ----------------------------------------

def one_vs_rest(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes (T,), targets (N, T) bool) with ``targets[:, t] = labels == classes[t]``."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    return classes, labels[:, None] == classes[None, :]


def neuron_selectiveness(activations: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(T, D) best single-neuron balanced accuracy of each target (column of ``targets``).

    ``targets`` is (N, T) bool, True where image n shows target t (see :func:`one_vs_rest` for
    identities; attribute matrices are used as they are). The accuracy is the best balanced
    accuracy ``(TPR + TNR) / 2`` over all thresholds and both directions (high activation means
    target, or low activation means target): see the module docstring. A cut is only placed
    between two distinct activation values, since no threshold can split equal ones (the many
    exact zeros after ReLU). The values lie in [0.5, 1].
    """
    a = _as_matrix(activations)
    targets = np.asarray(targets, dtype=bool)
    if targets.ndim != 2 or len(targets) != len(a):
        raise ValueError(f"targets must be (N={len(a)}, T) bool, got shape {targets.shape}")
    n_pos = targets.sum(axis=0)
    if np.any((n_pos == 0) | (n_pos == len(a))):
        raise ValueError("every target needs positive and negative images (balanced accuracy "
                         "is undefined otherwise)")
    n = len(a)
    # One sort per neuron serves every target; cut k calls the k lowest activations "rest".
    order = np.argsort(a, axis=0, kind="stable")
    ordered = np.take_along_axis(a, order, axis=0)
    valid = np.ones((n + 1, a.shape[1]), dtype=bool)
    valid[1:n] = ordered[1:] > ordered[:-1]
    k = np.arange(n + 1)[:, None]
    result = np.empty((targets.shape[1], a.shape[1]))
    for t in range(targets.shape[1]):
        pos_below = np.zeros((n + 1, a.shape[1]), dtype=np.int64)
        np.cumsum(targets[order, t], axis=0, out=pos_below[1:])
        tpr = (n_pos[t] - pos_below) / n_pos[t]
        tnr = (k - pos_below) / (n - n_pos[t])
        balanced = 0.5 * (tpr + tnr)
        result[t] = np.where(valid, np.maximum(balanced, 1.0 - balanced), 0.0).max(axis=0)
    return result


def best_neurons(selectiveness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per target (row): (index of the best neuron, its accuracy); lowest index on ties."""
    selectiveness = np.asarray(selectiveness)
    best = np.argmax(selectiveness, axis=1)
    return best, selectiveness[np.arange(len(best)), best]


# --- angular Fisher score (SphereFace Table 6) ------------------------------------------------

def _cosine_to(vectors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(directions, axis=1)
    if np.any(norms == 0):
        raise ValueError("a feature vector or a mean is zero and has no direction; the angular "
                         "Fisher score is undefined")
    return np.sum(vectors * directions, axis=1) / norms


def angular_fisher_terms(features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(S_w, S_b) of the angular Fisher score; means of the features as given (not normalised)."""
    x = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim != 2 or len(labels) != len(x):
        raise ValueError(f"features must be (N, d) with N labels, got {x.shape} and "
                         f"{len(labels)} labels")
    classes, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError("the angular Fisher score needs at least two classes")
    class_means = np.zeros((len(classes), x.shape[1]))
    np.add.at(class_means, index, x)
    class_means /= counts[:, None]
    global_mean = x.mean(axis=0, keepdims=True)
    s_w = float(np.sum(1.0 - _cosine_to(x, class_means[index])))
    s_b = float(np.sum(counts * (1.0 - _cosine_to(class_means, global_mean))))
    return s_w, s_b


def fisher_ratio(s_w: float, s_b: float) -> float:
    """``S_w / S_b`` from the two scatter terms; undefined when ``S_b = 0``."""
    if s_b <= 0:
        raise ValueError("every class mean points along the global mean (S_b = 0); the angular "
                         "Fisher score is undefined")
    return s_w / s_b


def angular_fisher_score(features: np.ndarray, labels: np.ndarray) -> float:
    """``S_w / S_b`` (SphereFace Table 6); lower means tighter, better separated classes."""
    return fisher_ratio(*angular_fisher_terms(features, labels))
