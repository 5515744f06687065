"""Applications of compact integer face codes: bin search and look-up-table classification.

After Fan, Yang, Cao, Jiang, Yin, "Learning Compact Face Representation: Packing a Face into
an int32" (ACM MM 2014), section 2 of docs/papers.md.

Codes. A face is an integer code ``c`` of ``n`` dimensions with values in ``[0, 2^Q)`` and
``n * Q = 32`` bits in the paper (32x1 binary, 16x2, 8x4, 4x8); every function here accepts any
``n * Q <= 63``. One code is one *bin*; :func:`pack` gives its integer id (dimension 0 in the
most significant bits). The distance between codes is the L1 distance of the integer values,

    d(a, b) = sum_i |a_i - b_i|,

which is the Hamming distance when ``Q = 1`` (the paper's choice; docs/papers.md).

Search (:func:`search_recall_curve`). Queries are the faces of people with at least
``min_images`` images (3: "more than two images", the paper's choice); the database is every
face except the query itself (leave-one-out). Bins are visited in ascending distance from the
query's code. At radius ``r`` every bin with ``d <= r`` has been visited, and per query:

    recall(r)         = |{j in S_q : d(c_j, c_q) <= r}| / |S_q|,
    bins_fraction(r)  = |{b in [0, 2^Q)^n : d(b, c_q) <= r}| / 2^(nQ),
    faces_fraction(r) = |{faces j != q : d(c_j, c_q) <= r}| / (N - 1),

with ``S_q`` the query's other faces of the same identity,

each averaged over query faces (every face of an eligible person is one query, so people with
many images weigh more). The order among bins at the *same* distance is not defined by the
paper, so the curve is reported at radius granularity only: one point per radius, with all the
bins at that distance visited. The bin count is exact: for ``Q > 1`` it depends on where the
query sits in the grid (a value near 0 or ``2^Q - 1`` has fewer neighbours), and it is computed
by a dynamic programme over dimensions (:func:`bins_at_distance`); for ``Q = 1`` it is
``sum_{k <= r} C(n, k)``.

Look-up table (:class:`LookupTableClassifier`). Each non-empty bin stores the label counts of
its training faces. A query takes the counts of its own bin; when that bin is empty, the pooled
counts of all training faces in the nearest non-empty bins (the smallest radius ``r`` at which
any training face lies). The prediction is the label with the largest pooled count; ties go to
the label that is more frequent in the whole training set, then to the first label in sorted
order. The paper uses it for gender.

Protocol kinds: ``compact_search`` (Fig. 5) and ``lut_attribute`` (the gender look-up table)
run these on a Compact int32 net's codes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from facerepro import features
from facerepro.data.protocols import attributes_of
from facerepro.evaluation.attributes import balanced_accuracy
from facerepro.evaluation.context import KINDS, ProtocolContext

_WORD = 64


def _check_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be a 2-d integer array, got {codes.dtype} {codes.shape}")
    if bits < 1 or codes.shape[1] * bits > 63:
        raise ValueError(f"need 1 <= bits and n * bits <= 63, got n={codes.shape[1]}, "
                         f"bits={bits}")
    if codes.size and (codes.min() < 0 or codes.max() >= 2**bits):
        raise ValueError(f"code values must lie in [0, {2**bits}) for bits={bits}")
    return codes.astype(np.int64)


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Bin id of each code row: uint32 when ``n * bits <= 32``, else uint64."""
    codes = _check_codes(codes, bits)
    n = codes.shape[1]
    shifts = bits * np.arange(n - 1, -1, -1, dtype=np.uint64)
    ids = np.bitwise_or.reduce(codes.astype(np.uint64) << shifts, axis=1)
    return ids.astype(np.uint32 if n * bits <= 32 else np.uint64)


def unpack(ids: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: (N,) bin ids to an (N, n) int64 code array."""
    shifts = bits * np.arange(n - 1, -1, -1, dtype=np.uint64)
    mask = np.uint64(2**bits - 1)
    return ((np.asarray(ids, np.uint64)[:, None] >> shifts) & mask).astype(np.int64)


def _use_thermometer(n: int, bits: int) -> bool:
    # L1 between values v, w in [0, 2^Q) is the Hamming distance between their thermometer
    # codes (v ones then zeros, 2^Q - 1 bits), so a whole code's L1 is one popcount per 64-bit
    # word. That is cheaper than n subtractions unless 2^Q is large (4x8 needs 16 words).
    return -(-n * (2**bits - 1) // _WORD) < n


def _encode(codes: np.ndarray, bits: int) -> np.ndarray:
    """The representation :func:`_distance` works on: thermometer words or the raw values."""
    n = codes.shape[1]
    if not _use_thermometer(n, bits):
        return codes.astype(np.int32)      # differences of up-to-31-bit values fit
    width = 2**bits - 1
    ones = (np.arange(width) < codes[:, :, None]).reshape(len(codes), n * width)
    padded = np.zeros((len(codes), -(-n * width // _WORD) * _WORD), bool)
    padded[:, : n * width] = ones
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


def _distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L1 code distance of broadcastable encodings (last axis: words or dimensions)."""
    total = np.zeros(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]), np.int32)
    # One pass per word or dimension: numpy reduces a short trailing axis slowly.
    for w in range(x.shape[-1]):
        if x.dtype == np.uint64:
            total += np.bitwise_count(x[..., w] ^ y[..., w])
        else:
            total += np.abs(x[..., w] - y[..., w])
    return total


def code_distances(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """(Na, Nb) int32 matrix of L1 distances between two code arrays."""
    a, b = _check_codes(a, bits), _check_codes(b, bits)
    return _distance(_encode(a, bits)[:, None], _encode(b, bits)[None])


def _max_radius(n: int, bits: int, max_radius: int | None) -> int:
    radius = n * (2**bits - 1) if max_radius is None else int(max_radius)
    if radius < 0:
        raise ValueError(f"max_radius must be >= 0, got {radius}")
    return radius


def bins_at_distance(codes: np.ndarray, bits: int, max_radius: int | None = None) -> np.ndarray:
    """(N, R + 1) int64: how many grid codes lie at L1 distance exactly r from each code.

    Dynamic programme over dimensions: with ``M = 2^Q - 1`` and ``q`` the query's value in the
    next dimension, the count polynomial is multiplied by ``sum_{v=0}^{M} x^|v - q|``; each
    coefficient of the product is two window sums, read off prefix sums. ``R`` defaults to the
    largest possible distance ``n M``.
    """
    codes = _check_codes(codes, bits)
    top = 2**bits - 1
    radius = _max_radius(codes.shape[1], bits, max_radius)
    # Distance counts are unchanged by mirroring a value (q -> M - q) and by permuting the
    # dimensions, so only distinct sorted mirrored codes need the programme.
    folded = np.sort(np.minimum(codes, top - codes), axis=1)
    unique, inverse = np.unique(folded, axis=0, return_inverse=True)
    counts = np.zeros((len(unique), radius + 1), np.int64)
    counts[:, 0] = 1
    k = np.arange(radius + 1)
    for q in unique.T:
        prefix = np.zeros((len(unique), radius + 2), np.int64)
        np.cumsum(counts, axis=1, out=prefix[:, 1:])
        # Values v <= q lie at distance q - v (d = 0..q), values v > q at v - q (d = 1..M-q):
        # coefficient k gains the window sums counts[k-q .. k] and counts[k-M+q .. k-1].
        near_lo = np.maximum(k - q[:, None], 0)
        far_lo = np.maximum(k - (top - q[:, None]), 0)
        counts = (prefix[:, 1:] + prefix[:, :-1] - np.take_along_axis(prefix, near_lo, axis=1)
                  - np.take_along_axis(prefix, far_lo, axis=1))
    return counts[inverse.ravel()]


def query_indices(identities: np.ndarray, min_images: int = 3) -> np.ndarray:
    """Indices of the faces whose identity has at least ``min_images`` images."""
    if min_images < 2:
        raise ValueError("min_images must be >= 2 so that every query has a same-identity face")
    _, inverse, sizes = np.unique(identities, return_inverse=True, return_counts=True)
    return np.flatnonzero(sizes[inverse.ravel()] >= min_images)


def search_recall_curve(codes: np.ndarray, identities: np.ndarray, bits: int,
                        min_images: int = 3, queries: np.ndarray | None = None,
                        max_radius: int | None = None, chunk: int = 128) -> pd.DataFrame:
    """Recall against bins and faces visited, one row per radius (see the module docstring).

    ``queries`` overrides the default query set (:func:`query_indices` with ``min_images``);
    ``max_radius`` defaults to the largest possible distance. Columns: ``radius``, ``recall``,
    ``bins_visited`` (mean count), ``bins_fraction``, ``faces_fraction``; ``attrs`` holds
    ``n_queries`` and ``n_database``.
    """
    codes = _check_codes(codes, bits)
    identities = np.asarray(identities)
    n_faces, n = codes.shape
    if len(identities) != n_faces:
        raise ValueError(f"{n_faces} codes but {len(identities)} identities")
    radius = _max_radius(n, bits, max_radius)
    q_idx = (query_indices(identities, min_images) if queries is None
             else np.asarray(queries, np.int64))
    if len(q_idx) == 0:
        raise ValueError(f"no identity has {min_images} or more images: no queries")

    encoded = _encode(codes, bits)
    width = radius + 2  # last column collects everything beyond max_radius
    found_all = np.zeros((len(q_idx), width), np.int64)
    for start in range(0, len(q_idx), chunk):
        rows = q_idx[start:start + chunk]
        dist = np.minimum(_distance(encoded[rows, None], encoded[None]), radius + 1)
        offsets = np.arange(len(rows))[:, None] * width
        found_all[start:start + len(rows)] = np.bincount(
            (offsets + dist).ravel(), minlength=len(rows) * width).reshape(len(rows), width)
    found_all[:, 0] -= 1  # the query itself, at distance 0

    # Same-identity pairs are few, so they are scored pair by pair rather than by a mask over
    # the full distance matrix. Each query's identity is a run [lo, hi) of the sorted faces.
    order = np.argsort(identities, kind="stable")
    lo = np.searchsorted(identities[order], identities[q_idx], side="left")
    hi = np.searchsorted(identities[order], identities[q_idx], side="right")
    n_same = hi - lo  # includes the query itself
    if np.any(n_same < 2):
        raise ValueError("every query needs another face of the same identity")
    owner = np.repeat(np.arange(len(q_idx)), n_same)
    run_start = np.repeat(np.cumsum(n_same) - n_same, n_same)
    partner = order[np.repeat(lo, n_same) + np.arange(n_same.sum()) - run_start]
    keep = partner != q_idx[owner]
    owner, partner = owner[keep], partner[keep]
    pair_dist = np.minimum(_distance(encoded[q_idx[owner]], encoded[partner]), radius + 1)
    found_same = np.bincount(owner * width + pair_dist,
                             minlength=len(q_idx) * width).reshape(len(q_idx), width)

    bins = np.cumsum(bins_at_distance(codes[q_idx], bits, radius), axis=1)
    recall = np.cumsum(found_same[:, :-1], axis=1) / (n_same - 1)[:, None]
    faces = np.cumsum(found_all[:, :-1], axis=1) / (n_faces - 1)
    curve = pd.DataFrame({
        "radius": np.arange(radius + 1),
        "recall": recall.mean(axis=0),
        "bins_visited": bins.mean(axis=0),
        "bins_fraction": (bins / 2.0 ** (n * bits)).mean(axis=0),
        "faces_fraction": faces.mean(axis=0),
    })
    curve.attrs.update(n_queries=len(q_idx), n_database=n_faces)
    return curve


def recall_at_bins_fraction(curve: pd.DataFrame, fraction: float) -> float:
    """Recall at the largest radius whose mean bins fraction is <= ``fraction`` (0 if none)."""
    within = curve["bins_fraction"] <= fraction
    return float(curve.loc[within, "recall"].max()) if within.any() else 0.0


class LookupTableClassifier(ClassifierMixin, BaseEstimator):
    """Majority label of the query's bin, falling back to the nearest non-empty bins.

    ``fit(codes, labels)`` stores per non-empty bin the count of each label. See the module
    docstring for the fallback and the tie rule.
    """

    def __init__(self, bits: int = 1, chunk: int = 1024):
        self.bits = bits
        self.chunk = chunk

    def fit(self, codes: np.ndarray, labels: np.ndarray) -> LookupTableClassifier:
        codes = _check_codes(codes, self.bits)
        labels = np.asarray(labels)
        if len(labels) != len(codes) or len(codes) == 0:
            raise ValueError(f"need one label per code and at least one code, got "
                             f"{len(codes)} codes and {len(labels)} labels")
        self.classes_, y = np.unique(labels, return_inverse=True)
        self.n_dims_ = codes.shape[1]
        self.bin_ids_, bin_of = np.unique(pack(codes, self.bits), return_inverse=True)
        shape = (len(self.bin_ids_), len(self.classes_))
        self.bin_counts_ = np.bincount(bin_of.ravel() * shape[1] + y.ravel(),
                                       minlength=shape[0] * shape[1]).reshape(shape)
        self.class_totals_ = self.bin_counts_.sum(axis=0)
        self._bin_encoded = _encode(unpack(self.bin_ids_, self.n_dims_, self.bits), self.bits)
        return self

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pooled label counts (N, n_classes) and the radius they came from (0 = own bin)."""
        check_is_fitted(self, "bin_counts_")
        codes = _check_codes(codes, self.bits)
        if codes.shape[1] != self.n_dims_:
            raise ValueError(f"fitted on {self.n_dims_}-d codes, got {codes.shape[1]}-d")
        ids = pack(codes, self.bits).astype(self.bin_ids_.dtype)
        slot = np.minimum(np.searchsorted(self.bin_ids_, ids), len(self.bin_ids_) - 1)
        hit = self.bin_ids_[slot] == ids
        counts = np.zeros((len(codes), len(self.classes_)), np.int64)
        counts[hit] = self.bin_counts_[slot[hit]]
        radius = np.zeros(len(codes), np.int64)
        missing = np.flatnonzero(~hit)
        encoded = _encode(codes[missing], self.bits)
        for start in range(0, len(missing), self.chunk):
            rows = missing[start:start + self.chunk]
            dist = _distance(encoded[start:start + self.chunk, None], self._bin_encoded[None])
            nearest = dist.min(axis=1)
            counts[rows] = (dist == nearest[:, None]).astype(np.int64) @ self.bin_counts_
            radius[rows] = nearest
        return counts, radius

    def predict_proba(self, codes: np.ndarray) -> np.ndarray:
        """Label frequencies among the pooled training faces (columns follow ``classes_``)."""
        counts, _ = self.lookup(codes)
        return counts / counts.sum(axis=1, keepdims=True)

    def predict(self, codes: np.ndarray) -> np.ndarray:
        counts, _ = self.lookup(codes)
        # Lexicographic (count, training frequency): the frequency term is below one count.
        key = counts * (self.class_totals_.sum() + 1) + self.class_totals_
        return self.classes_[np.argmax(key, axis=1)]


@KINDS.register("compact_search")
def compact_search(ctx: ProtocolContext) -> dict[str, dict]:
    """Recall of a face's other images against the fraction of code bins visited, bins in
    ascending distance from the query's code (Compact int32 Fig. 5)."""
    codes, _, identity = ctx.set_features()
    curve = search_recall_curve(codes.astype(np.int64), identity, ctx.bits,
                                ctx.protocol["min_images"])
    values = {f"recall@bins={f:g}": recall_at_bins_fraction(curve, f)
              for f in ctx.protocol["bins_fractions"]}
    return {"l1": {"values": values,
                   "n": {"queries": int(curve.attrs["n_queries"]),
                         "database": int(curve.attrs["n_database"]),
                         "bits": codes.shape[1] * ctx.bits},
                   "curves": {"recall_vs_bins": {"x": curve["bins_fraction"].tolist(),
                                                 "y": curve["recall"].tolist()}}}}


@KINDS.register("lut_attribute")
def lut_attribute(ctx: ProtocolContext) -> dict[str, dict]:
    """The look-up-table classifier of one binary attribute (Compact int32: gender): label
    counts per code bin from the training faces of ``ctx.train_path``, the query's bin (or the
    nearest non-empty bins) decides."""
    protocol = ctx.protocol
    attribute = protocol["attribute"]

    def labelled(path: str | Path, root: str | Path, file: str) -> tuple[np.ndarray, np.ndarray]:
        codes, image_ids, _ = features.load(path)
        attrs, rows = attributes_of(image_ids, Path(root) / file)
        return codes[rows].astype(np.int64), attrs[attribute].to_numpy()

    x_train, y_train = labelled(ctx.train_path, ctx.train_root,
                                protocol["train_attributes_file"])
    x_test, y_test = labelled(ctx.features_path, ctx.dataset_root, protocol["attributes_file"])
    lut = LookupTableClassifier(ctx.bits).fit(x_train, y_train)
    _, radius = lut.lookup(x_test)
    pred = lut.predict(x_test)
    return {"lookup_table": {
        "values": {"accuracy": float(np.mean(pred == y_test)),
                   "balanced_accuracy": float(balanced_accuracy(
                       y_test[:, None], pred[:, None])["balanced_accuracy"].iloc[0]),
                   "empty_bin_fraction": float(np.mean(radius > 0))},
        "n": {"train": len(x_train), "test": len(x_test), "bins": len(lut.bin_ids_)}}}
