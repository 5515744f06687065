"""Jobs import what they use: a registry loads an implementation's module on its first lookup,
and an LFW verification job, a features file read or a dataset-landmarks job loads no torch,
faiss, matplotlib or OpenCV. Each import check runs in a fresh interpreter."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facerepro.evaluation.context import KINDS
from facerepro.registries import Registry, UnknownNameError


@pytest.fixture()
def shapes_module(tmp_path, monkeypatch):
    """A module ``lazy_shapes`` that files 'square' in the registry ``lazy_shapes_registry.SHAPES``
    when it is imported."""
    (tmp_path / "lazy_shapes_registry.py").write_text(
        "from facerepro.registries import Registry\nSHAPES = Registry('shape')\n")
    (tmp_path / "lazy_shapes.py").write_text(textwrap.dedent("""
        from lazy_shapes_registry import SHAPES

        @SHAPES.register("square")
        def square(side):
            return side * side
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("lazy_shapes", "lazy_shapes_registry"):
        sys.modules.pop(name, None)


def test_a_module_registers_its_names_on_the_first_lookup(shapes_module):
    from lazy_shapes_registry import SHAPES

    SHAPES.register("circle")(abs)
    SHAPES.register_module("lazy_shapes", "square")
    assert list(SHAPES) == ["circle", "square"] and len(SHAPES) == 2
    assert "square" in SHAPES and "lazy_shapes" not in sys.modules     # `in` imports nothing
    with pytest.raises(UnknownNameError, match="unknown shape 'oval'; known: circle, square"):
        SHAPES["oval"]
    assert "lazy_shapes" not in sys.modules
    assert SHAPES["square"](3) == 9 and "lazy_shapes" in sys.modules
    assert SHAPES["square"] is sys.modules["lazy_shapes"].square


def test_a_lazy_name_is_registered_once_and_only_by_its_module(shapes_module):
    from lazy_shapes_registry import SHAPES

    SHAPES.register_module("lazy_shapes", "square", "oval")
    with pytest.raises(ValueError, match="a shape named 'square' is already registered"):
        SHAPES.register("square")(abs)            # abs is not lazy_shapes' square
    with pytest.raises(ValueError, match="already registered"):
        SHAPES.register_module("elsewhere", "oval")
    with pytest.raises(ImportError, match="lazy_shapes registers no shape 'oval'"):
        SHAPES["oval"]
    assert SHAPES["square"](2) == 4


def test_a_module_imported_before_its_names_are_filed_has_registered_them(shapes_module):
    from lazy_shapes import square
    from lazy_shapes_registry import SHAPES

    SHAPES.register_module("lazy_shapes", "square")
    assert SHAPES["square"] is square and list(SHAPES) == ["square"]


def test_a_registry_without_lazy_names_is_unchanged():
    shapes = Registry("shape")
    shapes.register("circle")(abs)
    assert dict(shapes) == {"circle": abs}


def test_every_lazy_kind_is_registered_by_its_module():
    import facerepro.evaluation.protocol  # noqa: F401  (files the lazy kinds)

    assert {name: KINDS[name].__module__ for name in KINDS} == {
        **dict.fromkeys(["lfw_pairs", "ytf_videos", "lfw_identification", "megaface",
                         "clustering", "angular_fisher"], "facerepro.evaluation.protocol"),
        "occlusion": "facerepro.evaluation.occlusion",
        "sparsity": "facerepro.evaluation.neurons",
        "selectiveness": "facerepro.evaluation.neurons",
        "compact_search": "facerepro.evaluation.compact_search",
        "lut_attribute": "facerepro.evaluation.compact_search",
        "attributes": "facerepro.evaluation.classification",
        "imbalanced_classification": "facerepro.evaluation.classification"}


NET_LIBRARIES = ("torch", "faiss", "matplotlib", "cv2", "seaborn", "skimage", "sklearn.cluster")


def loaded_after(code: str, cwd: Path, watched: tuple[str, ...] = NET_LIBRARIES) -> set[str]:
    """Which ``watched`` modules a fresh interpreter has loaded after running ``code``."""
    probe = code + f"\nimport sys\nprint(sorted(m for m in {watched!r} if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


def test_an_lfw_verification_job_loads_no_net_library(tmp_path):
    # 8 people of two images; 2 folds of 2 same and 2 different pairs (LFW's pairs.txt format)
    people = [f"P{i}" for i in range(8)]
    lines = ["2\t2"]
    for fold in range(2):
        lines += [f"{p}\t1\t2" for p in people[4 * fold:4 * fold + 2]]
        lines += [f"{people[i]}\t1\t{people[i + 2]}\t2" for i in range(4 * fold, 4 * fold + 2)]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    ids = [f"lfw/{p}/{p}_{n:04d}" for p in people for n in (1, 2)]
    np.savez(tmp_path / "f.npz", features=np.random.default_rng(0).normal(size=(16, 4)),
             image_id=np.array(ids), identity=np.repeat(people, 2), flip_merge="none")
    code = textwrap.dedent("""
        from facerepro.evaluation.protocol import run_protocol

        protocol = {"kind": "lfw_pairs", "pairs_file": "pairs.txt", "scorers": ["cosine"],
                    "fars": [0.01]}
        out = run_protocol("r", "p", protocol, ["f.npz"], ".", "m.json", {"net_options": {}})
        assert out["scorers"]["cosine"]["n"]["pairs"] == 8
        """)
    assert loaded_after(code, tmp_path) == set()
    assert (tmp_path / "m.json").exists()


def test_reading_features_and_planning_views_load_no_net_library(tmp_path):
    code = ("import facerepro.features, facerepro.views, facerepro.training.launch\n"
            "import facerepro.evaluation.protocol\n")
    assert loaded_after(code, tmp_path) == set()


def test_an_align_or_dataset_landmarks_job_loads_no_torch(tmp_path):
    code = ("import facerepro.align.landmarks, facerepro.align.aligner, "
            "facerepro.align.face_policy\n")
    assert loaded_after(code, tmp_path, ("torch",)) == set()
