import json

import pytest

from facerepro.evaluation import metrics


def _entry():
    return {"values": {"accuracy_mean": 0.9, "auc": None}, "per_fold": {"accuracy": [0.9, 0.9]},
            "n": {"pairs": 4, "folds": 2}, "curves": {"roc": {"x": [0, 1], "y": [0, 1]}},
            "notes": ["auc not measurable: one class"]}


def test_valid_metrics_round_trip(tmp_path):
    dest = tmp_path / "m.json"
    metrics.write(dest, "softmax", "lfw", "lfw_pairs", {"cosine": _entry()}, {"features": "f"})
    back = metrics.read(dest)
    assert back["scorers"]["cosine"]["values"]["accuracy_mean"] == 0.9
    assert back["run"] == "softmax" and back["protocol"] == "lfw"


@pytest.mark.parametrize("break_it, where", [
    (lambda e: e["values"].update(accuracy_mean="high"), "scorers.cosine.values.accuracy_mean"),
    (lambda e: e["n"].update(pairs=-1), "scorers.cosine.n.pairs"),
    (lambda e: e.pop("n"), "scorers.cosine"),
    (lambda e: e.update(extra=1), "scorers.cosine"),
    (lambda e: e["curves"]["roc"].pop("y"), "scorers.cosine.curves.roc"),
    (lambda e: e.update(items={"accuracy_mean": {"ids": ["a", "b"], "values": [1.0, "x"]}}),
     "scorers.cosine.items.accuracy_mean.values.1"),
    (lambda e: e.update(items={"accuracy_mean": {"ids": ["a", 2], "values": [1.0, 0.0]}}),
     "scorers.cosine.items.accuracy_mean.ids.1"),
])
def test_invalid_metrics_are_never_written(tmp_path, break_it, where):
    entry = _entry()
    break_it(entry)
    dest = tmp_path / "m.json"
    with pytest.raises(metrics.MetricsError, match=f"{where}:"):
        metrics.write(dest, "softmax", "lfw", "lfw_pairs", {"cosine": entry}, {})
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_reading_checks_the_schema(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"run": "r", "protocol": "p", "kind": "k", "scorers": {}}))
    with pytest.raises(metrics.MetricsError, match=str(path)):
        metrics.read(path)
