"""Batch samplers: batch structure, epochs, pair composition, exact resume, registry."""

import io

import numpy as np
import pytest
import torch

from facerepro.training import samplers
from facerepro.training.samplers import (
    IdentitySampler,
    PairSampler,
    ShuffleSampler,
    pair_labels,
)

# 12 identities: 0 and 1 have a single image (never eligible for positives), 2..4 have fewer
# images than K = 4, the rest have more.
COUNTS = [1, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10]
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(len(COUNTS)), COUNTS))

BUILDS = {"shuffle": {}, "identity": {"images_per_identity": 4},
          "pair": {"positive_fraction": 0.5}}


def test_identity_batches_are_p_identities_of_k_rows():
    sampler = IdentitySampler(LABELS, identities_per_batch=3, images_per_identity=4, seed=1)
    for _ in range(20):
        batch = sampler.next_batch()
        assert batch.shape == (12,)
        groups = LABELS[batch].reshape(3, 4)
        assert (groups == groups[:, :1]).all()  # each run of K rows is one identity
        assert len(set(groups[:, 0])) == 3
        for rows, identity in zip(batch.reshape(3, 4), groups[:, 0], strict=True):
            own = set(np.flatnonzero(LABELS == identity))
            assert COUNTS[identity] >= 2
            if COUNTS[identity] >= 4:
                assert len(set(rows)) == 4  # drawn without replacement
            else:
                assert set(rows) == own  # all its images, topped up with repeats


def test_identity_epochs_visit_each_eligible_identity_once():
    eligible = [i for i, c in enumerate(COUNTS) if c >= 2]  # 10 identities
    sampler = IdentitySampler(LABELS, identities_per_batch=5, images_per_identity=2, seed=2)
    epochs = []
    for _ in range(3):
        batches = [sampler.next_batch() for _ in range(2)]
        epochs.append(LABELS[np.concatenate(batches)][::2])
    for seen in epochs:
        assert sorted(seen) == eligible
    assert not np.array_equal(epochs[0], epochs[1])  # a new permutation each epoch

    # 10 identities in batches of 3: 3 batches an epoch, 9 distinct identities, 1 sits out
    sampler = IdentitySampler(LABELS, identities_per_batch=3, images_per_identity=2, seed=2)
    for _ in range(3):
        seen = LABELS[np.concatenate([sampler.next_batch() for _ in range(3)])][::2]
        assert len(set(seen)) == 9


@pytest.mark.parametrize(("batch_size", "fraction", "same"), [(10, 0.6, 3), (8, 0.5, 2),
                                                              (6, 1.0, 3), (6, 0.0, 0)])
def test_pair_batches_have_exact_same_and_different_counts(batch_size, fraction, same):
    sampler = PairSampler(LABELS, batch_size, seed=3, positive_fraction=fraction)
    same_identities = set()
    for _ in range(50):
        rows = sampler.next_batch()
        assert rows.shape == (batch_size,)
        is_same = pair_labels(rows, LABELS)
        assert is_same[:same].all() and not is_same[same:].any()
        assert (rows[0:2 * same:2] != rows[1:2 * same:2]).all()  # never one image twice
        same_identities.update(LABELS[rows[0:2 * same:2]])
    if same:
        assert same_identities == {i for i, c in enumerate(COUNTS) if c >= 2}


def test_pair_labels():
    np.testing.assert_array_equal(pair_labels([0, 1, 2, 3], [5, 5, 6, 7]), [True, False])
    with pytest.raises(ValueError, match="3 rows"):
        pair_labels([0, 1, 2], [5, 5, 6])


def _run(name, seed, batches, state=None):
    sampler = samplers.build(name, LABELS, 8, seed, **BUILDS[name])
    if state is not None:
        sampler.load_state_dict(state)
    return sampler, [sampler.next_batch() for _ in range(batches)]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_restored_sampler_continues_the_same_sequence(name):
    # 13 batches of 8 cross epoch boundaries (shuffle: 7 batches an epoch, identity: 5)
    _, expected = _run(name, seed=4, batches=13)
    interrupted, _ = _run(name, seed=4, batches=7)
    buffer = io.BytesIO()
    torch.save(interrupted.state_dict(), buffer)  # as the trainer's checkpoint stores it
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    _, rest = _run(name, seed=4, batches=6, state=state)
    for got, want in zip(rest, expected[7:], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_sequences_are_deterministic_and_depend_on_the_seed(name):
    _, first = _run(name, seed=5, batches=6)
    _, again = _run(name, seed=5, batches=6)
    _, other = _run(name, seed=6, batches=6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_build_shuffle_is_the_shuffle_sampler():
    built = samplers.build("shuffle", LABELS, 8, 7)
    plain = ShuffleSampler(len(LABELS), 8, 7)
    for _ in range(10):
        np.testing.assert_array_equal(built.next_batch(), plain.next_batch())


def test_build_identity_derives_or_checks_identities_per_batch():
    sampler = samplers.build("identity", LABELS, 12, 0, images_per_identity=4)
    assert (sampler.identities_per_batch, sampler.images_per_identity) == (3, 4)
    with pytest.raises(ValueError, match=r"batch_size 10 must equal .* \(2 x 4 = 8\)"):
        samplers.build("identity", LABELS, 10, 0, images_per_identity=4)
    with pytest.raises(ValueError, match=r"batch_size 12 .* \(2 x 4 = 8\)"):
        samplers.build("identity", LABELS, 12, 0, images_per_identity=4, identities_per_batch=2)


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(KeyError, match="'nope'.*cluster, identity, pair, shuffle"):
        samplers.build("nope", LABELS, 8, 0)


def test_a_new_sampler_plugs_in_by_name(monkeypatch):
    # the registration is undone after the test
    monkeypatch.setattr(samplers.SAMPLERS, "_entries", dict(samplers.SAMPLERS._entries))

    @samplers.SAMPLERS.register("first_rows")
    def first_rows(labels, batch_size, seed, offset=0):
        return ShuffleSampler(len(labels) - offset, batch_size, seed)

    sampler = samplers.build("first_rows", LABELS, 4, 0, offset=50)
    assert sampler.next_batch().max() < len(LABELS) - 50
    with pytest.raises(ValueError, match="already registered"):
        samplers.SAMPLERS.register("pair")(first_rows)


def test_error_cases():
    with pytest.raises(ValueError, match="10 identities have at least 2 images, fewer than the 11"):
        IdentitySampler(LABELS, 11, 2, seed=0)
    with pytest.raises(ValueError, match="images_per_identity is 1"):
        IdentitySampler(LABELS, 3, 1, seed=0)
    with pytest.raises(ValueError, match="identities_per_batch is 1"):
        IdentitySampler(LABELS, 1, 4, seed=0)
    with pytest.raises(ValueError, match="batch_size 7 must be even"):
        PairSampler(LABELS, 7, seed=0)
    with pytest.raises(ValueError, match=r"positive_fraction 1.5 is not in \[0, 1\]"):
        PairSampler(LABELS, 8, seed=0, positive_fraction=1.5)
    with pytest.raises(ValueError, match="no identity has 2 images"):
        PairSampler([0, 1, 2], 4, seed=0)
    with pytest.raises(ValueError, match="1 identity in the training data"):
        PairSampler([0, 0, 0], 4, seed=0)
