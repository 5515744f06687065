"""CLMLE wired into training and evaluation: power-law classes, the attribute net and its
softmax baseline, cluster batches over tasks, init_from, and the two CLMLE protocol kinds."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_protocol_kinds import save_features
from torch.nn import functional as F

from facerepro import config, features
from facerepro.align.shards import write_shard
from facerepro.data.imbalance import POWER_LAW, power_law_faces, power_law_sizes, power_law_split
from facerepro.evaluation.classification import attribute_prediction, imbalanced_classification
from facerepro.evaluation.context import ProtocolContext
from facerepro.features import extract
from facerepro.losses.attribute_softmax import AttributeSoftmaxLoss
from facerepro.models.attributes import AttributeNet
from facerepro.training.clustering import ClusterBatches
from facerepro.training.trainer import train, training_rows
from facerepro.views import View

# --- power-law subsampling (Table 8) ---------------------------------------------------------


def test_power_law_sizes_follow_the_formula():
    # 200 / (c + 0) for c = 1..4, rounded
    np.testing.assert_array_equal(power_law_sizes(4, 1.0, 200, 0), [200, 100, 67, 50])
    # 200 / (sqrt(c) + 1): 100, 82.8, 73.2
    np.testing.assert_array_equal(power_law_sizes(3, 0.5, 200, 1), [100, 83, 73])
    assert power_law_sizes(3, 1.0, 1, 5).min() == 1          # never an empty class


def _people(counts):
    ids, who = [], []
    for person, n in counts.items():
        ids += [f"{person}/{k:03d}" for k in range(n)]
        who += [person] * n
    return np.array(ids), np.array(who)


def test_power_law_split_takes_the_largest_classes_and_counts_add_up():
    ids, who = _people({"a": 30, "b": 50, "c": 12, "d": 40, "e": 3})
    split = power_law_split(ids, who, classes=3, gamma=1.0, l_max=24, l_min=0,
                            test_per_class=5, seed=0)
    assert set(split["identity"]) == {"b", "d", "a"}           # by image count
    train = split[split["role"] == "train"].groupby("identity").size()
    test = split[split["role"] == "test"].groupby("identity").size()
    assert train.to_dict() == {"b": 24, "d": 12, "a": 8}       # 24 / rank
    assert (test == 5).all()
    assert not split["image_id"].duplicated().any()
    shuffled = np.random.default_rng(1).permutation(len(ids))
    again = power_law_split(ids[shuffled], who[shuffled], classes=3, gamma=1.0, l_max=24,
                            l_min=0, test_per_class=5, seed=0)
    pd.testing.assert_frame_equal(split, again)                # input order does not matter


def test_power_law_split_caps_at_what_a_class_has_and_rejects_too_small_classes():
    ids, who = _people({"a": 10, "b": 9})
    split = power_law_split(ids, who, classes=2, gamma=1.0, l_max=100, l_min=0,
                            test_per_class=2, seed=0)
    assert (split["role"] == "train").sum() == 8 + 7
    with pytest.raises(ValueError, match="test_per_class"):
        power_law_split(ids, who, classes=2, gamma=1.0, l_max=10, l_min=0,
                        test_per_class=9, seed=0)
    with pytest.raises(ValueError, match="3 classes"):
        power_law_split(ids, who, classes=3, gamma=1.0, l_max=10, l_min=0,
                        test_per_class=1, seed=0)


# --- the attribute net and its softmax baseline -------------------------------------------------


def test_attribute_net_heads_are_separate_slices():
    torch.manual_seed(0)
    net = AttributeNet((56, 48), embedding_dim=4, maps=(4, 4, 4, 4), attributes=3).eval()
    x = torch.randn(2, 3, 56, 48)
    before = net(x)
    assert before.shape == (2, 12)
    with torch.no_grad():
        net.heads.weight[4:8] += 1.0                           # head 1 only
    after = net(x)
    changed = (after - before).abs().amax(0) > 0
    np.testing.assert_array_equal(changed.numpy(), [False] * 4 + [True] * 4 + [False] * 4)
    np.testing.assert_array_equal(net.per_attribute(after)[:, 1].detach(), after[:, 4:8].detach())


def test_attribute_softmax_is_the_class_weighted_cross_entropy():
    torch.manual_seed(0)
    positives, total = np.array([1, 3]), 4
    loss = AttributeSoftmaxLoss(2, positives, total)
    emb = torch.randn(4, 4)
    target = torch.tensor([[1, 0], [0, 1], [0, 1], [0, 1]])
    expected = []
    for a in range(2):
        w = total / (2 * np.array([total - positives[a], positives[a]]))   # no, yes
        logits = emb[:, 2 * a:2 * a + 2] @ loss.weight[a].detach() + loss.bias[a].detach()
        nll = -F.log_softmax(logits, 1)[torch.arange(4), target[:, a]].numpy()
        weights = w[target[:, a].numpy()]
        expected.append((weights * nll).sum() / weights.sum())
    assert loss(emb, target).item() == pytest.approx(np.mean(expected), rel=1e-6)
    plain = AttributeSoftmaxLoss(2, positives, total, cost_sensitive=False)
    plain.load_state_dict({**loss.state_dict(), "costs": plain.costs})
    assert plain(emb, target).item() != pytest.approx(loss(emb, target).item())


# --- cluster batches over tasks ----------------------------------------------------------------


def _two_task_batches():
    classes = np.stack([np.arange(24) % 2, (np.arange(24) // 12)], axis=1)   # (24, 2 tasks)
    batches = ClusterBatches(classes, batch_size=6, seed=0, size=4, every=10, clusters_per_batch=3,
                             samples_per_cluster=2)
    feats = np.random.default_rng(0).normal(size=(24, 2 * 3)).astype(np.float32)
    batches.recluster(feats, 0)
    return batches


def test_cluster_batches_go_round_the_tasks_on_their_own_clusters():
    batches = _two_task_batches()
    for t in range(2):
        clusters = batches.targets[:, t, 1]
        assert len(np.unique(clusters)) == 6                   # 2 classes x floor(12 / 4)
        for c in np.unique(clusters):                          # a cluster holds one class
            assert len(np.unique(batches.targets[clusters == c, t, 0])) == 1
    for step in range(4):
        rows = batches.next_batch()
        task = step % 2
        blocks = batches.targets[rows, task, 1].reshape(3, 2)
        assert (blocks == blocks[:, :1]).all()                 # s rows of one cluster each
        assert len(np.unique(blocks[:, 0])) == 3


def test_cluster_batches_resume_with_the_same_clusters_and_batches():
    batches = _two_task_batches()
    batches.next_batch()
    batches.record([{0: 1.0}, {}])
    state = batches.state_dict()
    ahead = [batches.next_batch() for _ in range(4)]
    restored = _two_task_batches()
    restored.recluster(np.random.default_rng(5).normal(size=(24, 6)).astype(np.float32), 1)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.targets, batches.targets)
    for expected in ahead:
        np.testing.assert_array_equal(restored.next_batch(), expected)


# --- the trainer: init_from, attributes and power-law rows -------------------------------------


@pytest.fixture()
def shard(tmp_path):
    rng = np.random.default_rng(0)
    n = 48
    index = pd.DataFrame({"image_id": [f"img/{k:06d}" for k in range(n)],
                          "identity": [f"p{k % 4}" for k in range(n)],
                          "split": ["train"] * 40 + ["test"] * 8})
    write_shard(tmp_path / "shard", iter(rng.integers(0, 255, (n, 56, 48, 3), np.uint8)),
                index, 56, 48)
    attributes = rng.random((n, 3)) < 0.4
    attributes[0], attributes[1] = True, False
    lines = [str(n), "A B C"] + [f"{k:06d}.jpg " + " ".join("1" if v else "-1" for v in row)
                                 for k, row in enumerate(attributes)]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return tmp_path / "shard", attributes


def test_training_rows_reads_attributes_and_power_law_rows(shard, tmp_path):
    shard_dir, attributes = shard
    index = pd.read_parquet(shard_dir / "index.parquet")
    run = config.default_run(method="attribute_softmax", net="deepid2_attributes",
                             train="synth/celeba")
    positions, labels = training_rows(run, index, tmp_path)
    np.testing.assert_array_equal(positions, np.arange(40))
    np.testing.assert_array_equal(labels, attributes[:40].astype(np.int64))
    (tmp_path / "list_attr_celeba.txt").write_text("1\nA B C\n999999.jpg 1 1 1\n")
    with pytest.raises(ValueError, match="list_attr_celeba.txt"):
        training_rows(run, index, tmp_path)
    face = config.default_run(method="softmax", net="sphere4", train="synth/casia",
                              imbalance={"gamma": 1.0, "classes": 4, "l_max": 8,
                                         "test_per_class": 2})
    positions, labels = training_rows(face, index)
    assert sorted(np.bincount(labels)) == [2, 3, 4, 8]         # 8 / c, rounded


def test_the_powerlaw_view_embeds_the_runs_classes_with_their_roles(shard, tmp_path):
    torch.set_num_threads(1)
    shard_dir, _ = shard
    index = pd.read_parquet(shard_dir / "index.parquet")
    imbalance = {"gamma": 1.0, "classes": 4, "l_max": 8, "l_min": 0, "test_per_class": 2,
                 "seed": 0}
    run = config.default_run(method="softmax", net="sphere4", train="synth/casia",
                             embedding_dim=4, iterations=2, batch_size=8, lr=0.01,
                             imbalance=imbalance)
    train("p", run, shard_dir, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "c", "cpu")
    extract(tmp_path / "m.pt", shard_dir, tmp_path / "p.npz", View(POWER_LAW),
            flip_merge="none", imbalance=imbalance)
    extract(tmp_path / "m.pt", shard_dir, tmp_path / "t.npz", View("train"), flip_merge="none")
    feats, ids, _ = features.load(tmp_path / "p.npz")
    role = features.roles(tmp_path / "p.npz")
    positions, _ = training_rows(run, index)
    assert sorted(ids[role == "train"]) == sorted(index["image_id"][positions])
    assert (role == "test").sum() == 4 * 2
    assert not set(ids[role == "test"]) & set(ids[role == "train"])
    # the same faces' features as the whole train split's file holds them
    full, full_ids, _ = features.load(tmp_path / "t.npz")
    row = pd.Series(np.arange(len(full_ids)), index=full_ids)
    np.testing.assert_allclose(feats, full[row[ids]], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="imbalance"):
        extract(tmp_path / "m.pt", shard_dir, tmp_path / "x.npz", View(POWER_LAW))


def test_clmle_attributes_start_from_the_softmax_net(shard, tmp_path):
    torch.set_num_threads(1)
    shard_dir, _ = shard
    common = dict(net="deepid2_attributes", train="synth/celeba", embedding_dim=4,
                  net_options={"maps": [4, 4, 4, 4], "attributes": 3}, seed=0, log_every=2,
                  checkpoint_every=4)
    base = config.default_run(method="attribute_softmax", iterations=4, batch_size=8,
                              lr=0.01, **common)
    train("a", base, shard_dir, tmp_path / "a.pt", tmp_path / "a.json", tmp_path / "ca",
          "cpu", tmp_path)
    run = config.default_run(method="clmle", iterations=4, batch_size=6, lr=0.01,
                             clustering={"size": 4, "every": 2},
                             sampler_options={"clusters_per_batch": 3,
                                              "samples_per_cluster": 2}, **common)
    info = train("c", run, shard_dir, tmp_path / "c.pt", tmp_path / "c.json", tmp_path / "cc",
                 "cpu", tmp_path, tmp_path / "a.pt")
    assert info["classes"] == 3 and np.isfinite(info["final_loss"])
    with pytest.raises(ValueError, match="another net"):
        other = config.default_run(method="clmle", net="sphere4", train="synth/casia",
                                   embedding_dim=4, iterations=2, batch_size=6,
                                   sampler_options={"clusters_per_batch": 3,
                                                    "samples_per_cluster": 2})
        train("x", other, shard_dir, tmp_path / "x.pt", tmp_path / "x.json", tmp_path / "cx",
              "cpu", None, tmp_path / "a.pt")


def test_config_checks_init_from():
    runs = {"base": {"method": "softmax", "net": "sphere4", "train": "synth/casia"},
            "c": {"method": "clmle", "net": "sphere4", "train": "synth/casia",
                  "init_from": "missing"}}
    cfg = {"datasets": {"synth": {"kind": "synthfaces"}}, "runs": runs,
           "protocols": {"p": {"kind": "lfw_pairs", "dataset": "synth/lfw"}}}
    with pytest.raises(config.ConfigError, match="init_from = 'missing' must be another run"):
        config.validate(cfg)
    runs["c"]["init_from"] = "base"
    runs["c"]["embedding_dim"] = 64
    with pytest.raises(config.ConfigError, match="another embedding_dim"):
        config.validate({**cfg, "runs": runs})


# --- the protocols ----------------------------------------------------------------------------


def test_attribute_protocol_reads_each_attribute_from_its_own_head(tmp_path):
    rng = np.random.default_rng(0)
    n, names = 120, ["A", "B"]
    truth = rng.random((n, 2)) < np.array([0.5, 0.2])
    truth[:6] = [[True, True], [False, False]] * 3
    # head a separates attribute a perfectly; the other head is noise for it
    heads = [np.where(truth[:, [a]], 1.0, -1.0) + 0.1 * rng.normal(size=(n, 3))
             for a in range(2)]
    ids = [f"img/{k:06d}" for k in range(n)]
    save_features(tmp_path / "f.npz", np.concatenate(heads, 1), ids, ["x"] * n)
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(
        [str(n), " ".join(names)] + [f"{k:06d}.jpg " + " ".join("1" if v else "-1" for v in r)
                                     for k, r in enumerate(truth)]) + "\n")
    split = np.array(["0"] * 60 + ["1"] * 30 + ["2"] * 30)
    (tmp_path / "list_eval_partition.txt").write_text(
        "\n".join(f"{k:06d}.jpg {s}" for k, s in enumerate(split)) + "\n")
    protocol = {"classifier": "knc", "cluster_size": 10, "seed": 0, "depths": [2, 4],
                "attributes_file": "list_attr_celeba.txt",
                "partition_file": "list_eval_partition.txt"}
    out = attribute_prediction(ProtocolContext(protocol, [tmp_path / "f.npz"], tmp_path,
                                               {"labels": "attributes"}))
    entry = out["knc"]
    assert entry["values"]["mean_balanced_accuracy"] == 1.0
    assert entry["n"] == {"train": 60, "val": 30, "test": 30, "attributes": 2}
    rate = truth[:60].mean(0)
    np.testing.assert_allclose(entry["curves"]["attributes"]["imbalance"],
                               np.abs(100 * rate - 50))
    # read as one shared embedding, each attribute also sees the other's head: still separable
    svm = attribute_prediction(ProtocolContext({**protocol, "classifier": "svm"},
                                               [tmp_path / "f.npz"], tmp_path,
                                               {"labels": "identity"}))
    assert svm["svm"]["values"]["mean_balanced_accuracy"] == 1.0


def test_imbalanced_classification_scores_the_runs_own_test_faces(tmp_path):
    ids, who = _people({f"p{k}": 20 for k in range(4)})
    imbalance = {"gamma": 1.0, "classes": 4, "l_max": 8, "l_min": 0, "test_per_class": 5,
                 "seed": 0}
    faces = power_law_faces(pd.DataFrame({"image_id": ids, "identity": who, "split": "train"}),
                            imbalance)
    centres = {f"p{k}": np.eye(4)[k] for k in range(4)}
    feats = np.stack([centres[p] for p in faces["identity"]]) + 0.05 * np.random.default_rng(
        0).normal(size=(len(faces), 4))
    save_features(tmp_path / "f.npz", feats, faces["image_id"], faces["identity"],
                  role=faces["role"])
    protocol = {"classifier": "knc", "cluster_size": 2, "seed": 0, "depth": 3}
    entry = imbalanced_classification(ProtocolContext(protocol, [tmp_path / "f.npz"], tmp_path,
                                                      {"imbalance": imbalance}))["knc"]
    assert entry["values"]["mean_class_balanced_accuracy"] == 1.0
    assert entry["n"] == {"classes": 4, "train": 8 + 4 + 3 + 2, "test": 20,
                          "largest_class": 8, "smallest_class": 2}
    assert entry["values"]["imbalance_ratio"] == 4.0
    save_features(tmp_path / "all.npz", feats, faces["image_id"], faces["identity"])
    with pytest.raises(KeyError, match="all.npz holds no roles"):
        imbalanced_classification(ProtocolContext(protocol, [tmp_path / "all.npz"], tmp_path,
                                                  {"imbalance": imbalance}))
    with pytest.raises(ValueError, match="imbalance"):
        imbalanced_classification(ProtocolContext(protocol, [tmp_path / "f.npz"], tmp_path, {}))



@pytest.mark.parametrize("options", [{"cost_sensitive": True}, {"cost_sensitive": False},
                                     {"centroids": "unit", "normalise_weights": True}])
def test_multi_task_loss_equals_the_per_task_losses_and_their_gradients(options):
    from facerepro.losses.clmle import CLMLELoss, MultiTaskCLMLELoss

    rng = np.random.default_rng(3)
    tasks, batch, dim = 7, 24, 5
    labels = (rng.random((200, tasks)) < rng.random(tasks)).astype(np.int64)
    labels[:2] = [[0] * tasks, [1] * tasks]
    target = np.zeros((batch, tasks, 2), np.int64)
    target[..., 1] = rng.integers(0, 6, (batch, tasks))
    target[..., 0] = target[..., 1] % 2                       # cluster k belongs to class k % 2
    emb = torch.tensor(rng.normal(size=(batch, tasks * dim)), dtype=torch.float64,
                       requires_grad=True)
    multi = MultiTaskCLMLELoss(labels, a1=0.7, a2=0.3, **options).double()
    got = multi(emb, torch.from_numpy(target))
    (grad_got,) = torch.autograd.grad(got, emb)
    singles = [CLMLELoss(2, np.bincount(labels[:, t], minlength=2), 0.7, 0.3,
                         **options).double() for t in range(tasks)]
    want = torch.stack([loss(emb[:, t * dim:(t + 1) * dim], torch.from_numpy(target[:, t]))
                        for t, loss in enumerate(singles)]).mean()
    (grad_want,) = torch.autograd.grad(want, emb)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-10, atol=1e-12)
    for t, loss in enumerate(singles):
        assert multi.cluster_losses[t].keys() == loss.cluster_losses.keys()
        for k, v in loss.cluster_losses.items():
            assert multi.cluster_losses[t][k] == pytest.approx(v, rel=1e-12)


# --- re-sampling baselines (Table 5) -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["over", "down"])
def test_attribute_balanced_batches_halve_each_attribute_in_turn(mode):
    from facerepro.training import samplers

    rng = np.random.default_rng(0)
    labels = np.stack([rng.random(200) < 0.1, rng.random(200) < 0.7,
                       np.zeros(200, bool)], axis=1)
    sampler = samplers.build("attribute_balanced", labels, 20, 4, mode=mode)
    seen = [set(), set()]
    for step in range(60):
        rows = sampler.next_batch()
        assert len(rows) == 20
        a = step % 3
        if a < 2:
            assert labels[rows[:10], a].all() and not labels[rows[10:], a].any()
            seen[a] |= set(rows[10:] if a == 0 else rows[:10])      # the majority's rows
    majority = [(~labels[:, 0]).sum(), labels[:, 1].sum()]
    minority = [labels[:, 0].sum(), (~labels[:, 1]).sum()]
    for a in range(2):
        if mode == "down":                # only a minority-sized subset of the majority
            assert len(seen[a]) <= minority[a]
        else:
            assert len(seen[a]) > minority[a] and len(seen[a]) <= majority[a]
    restored = samplers.build("attribute_balanced", labels, 20, 4, mode=mode)
    restored.load_state_dict(sampler.state_dict())
    np.testing.assert_array_equal(restored.next_batch(), sampler.next_batch())
