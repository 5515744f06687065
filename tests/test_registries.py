"""The name registries: lookup, errors, and agreement of each with the names the config schema
accepts (a name the schema allows must build, and a registered name must be configurable)."""

import re

import numpy as np
import pytest

from facerepro import losses, models
from facerepro.config import FITTED_METHODS, load_schema
from facerepro.evaluation.context import JB_SCORERS, KINDS
from facerepro.evaluation.protocol import run_protocol
from facerepro.evaluation.verification import SCORERS, cosine
from facerepro.registries import Registry, UnknownNameError
from facerepro.training import samplers

SCHEMA = load_schema()["$defs"]
RUN, PROTOCOL = SCHEMA["run"]["properties"], SCHEMA["protocol"]["properties"]


def test_register_files_the_entry_unchanged_and_iterates_in_name_order():
    shapes = Registry("shape")

    @shapes.register("square")
    def square(side):
        return side * side

    shapes.register("circle")(abs)
    assert square(3) == 9 and shapes["square"] is square and shapes["circle"] is abs
    assert list(shapes) == ["circle", "square"] and len(shapes) == 2
    assert "square" in shapes and "triangle" not in shapes


def test_a_name_registers_once():
    shapes = Registry("shape")
    shapes.register("square")(abs)
    with pytest.raises(ValueError, match="a shape named 'square' is already registered"):
        shapes.register("square")(round)
    assert shapes["square"] is abs


def test_an_unknown_name_lists_the_known_ones_as_a_key_and_a_value_error():
    shapes = Registry("shape")
    for name in ("square", "circle"):
        shapes.register(name)(abs)
    with pytest.raises(UnknownNameError) as error:
        shapes["triangle"]
    assert isinstance(error.value, KeyError) and isinstance(error.value, ValueError)
    assert str(error.value) == "unknown shape 'triangle'; known: circle, square"


def _schema_nets() -> set[str]:
    """The names of the schema's net pattern: ``^(sphere(4|10)|compact)$`` -> sphere4, ..."""
    inner = RUN["net"]["pattern"].removeprefix("^(").removesuffix(")$")
    inner = re.sub(r"sphere\(([\d|]+)\)",
                   lambda m: "|".join(f"sphere{d}" for d in m[1].split("|")), inner)
    return set(inner.split("|"))


def test_every_registry_holds_exactly_the_names_the_schema_accepts():
    assert set(models.NETS) == _schema_nets()
    assert set(losses.LOSSES) == set(RUN["method"]["enum"]) - set(FITTED_METHODS)
    assert set(samplers.SAMPLERS) == set(RUN["sampler"]["enum"])
    assert set(SCORERS) | set(JB_SCORERS) == set(PROTOCOL["scorers"]["items"]["enum"])
    assert set(KINDS) == set(PROTOCOL["kind"]["enum"])


def test_builders_look_names_up_in_their_registry():
    assert type(models.build("sphere4", (112, 96), 8)).__name__ == "SphereNet"
    assert models.build("sphere20", (112, 96), 8).embedding_dim == 8
    assert SCORERS["cosine"] is cosine
    labels = np.array([0, 1, 2, 1])
    assert losses.build("softmax", 8, labels).classifier.out_features == 3
    assert losses.build("ident_verif", 8, labels, supervised_layers=4).dims == (8,) * 4


@pytest.mark.parametrize(("build", "message"), [
    (lambda: models.build("sphere7", (112, 96), 8), r"unknown net 'sphere7'; known: .*sphere64"),
    (lambda: losses.build("adaface", 8, np.zeros(4)),
     r"unknown method 'adaface'; known: a_softmax, arcface, attribute_softmax, clmle, cosface"),
    (lambda: samplers.build("nope", np.zeros(4), 2, 0), r"unknown sampler 'nope'; known: attr")])
def test_builders_name_the_unknown_name_and_the_known_ones(build, message):
    with pytest.raises(KeyError, match=message):
        build()


def test_run_protocol_names_an_unknown_kind_and_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown protocol kind 'nonsense'; known: .*sparsity"):
        run_protocol("r", "p", {"kind": "nonsense"}, [tmp_path / "f.npz"], tmp_path,
                     tmp_path / "m.json", {"net_options": {}})
    assert not (tmp_path / "m.json").exists()
