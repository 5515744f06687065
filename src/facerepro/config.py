"""Load and validate the workflow config against the one JSON schema.

Snakemake's Snakefile and the ``facerepro`` CLI both go through :func:`validate`, so a config
that passes here is exactly a config the workflow accepts. Defaults written in the schema are
filled in, at every depth, so downstream code can index keys without ``.get`` fallbacks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from facerepro import loss_options
from facerepro.data.registry import FOLDER, check_pins, part_spec, parts_of
from facerepro.data.synth import SynthConfig

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


# Methods whose net is fitted in closed form on training faces (``fit``: a PCA), not trained by
# a loss: the baselines of ours, with no paper settings to keep.
FITTED_METHODS = ("pixels_pca", "lbp")
# Protocol kinds that read a pairs file (``pairs_file``, by default the dataset's own).
PAIR_KINDS = ("lfw_pairs", "occlusion")


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type."""


def _with_defaults(validator_class: type) -> type:
    """A validator that writes schema defaults into the instance while it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = json.loads(json.dumps(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def dataclass_schema(cls: type) -> dict:
    """JSON schema of a frozen config dataclass: its fields, their annotated types, defaults,
    and the JSON-schema keywords in a field's metadata (a loss option's range), nothing else.

    The SynthFaces generator and each loss own their settings; deriving the schema from them
    keeps one source of truth for names and defaults. SynthFaces value ranges are checked by
    the dataclass itself.
    """
    types = {bool: "boolean", int: "integer", float: "number", str: "string"}
    hints = typing.get_type_hints(cls)
    defaults = cls()
    properties = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            properties[f.name] = {**dataclass_schema(kind), "default": {}}
        else:
            properties[f.name] = {"type": types[kind], "default": getattr(defaults, f.name),
                                  **f.metadata}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The config schema of ``path``, completed from the dataclasses that own their settings:
    the SynthFaces generator's, and each method's ``loss_options`` (``loss_options.OPTIONS``)."""
    with open(path) as fh:
        schema = yaml.safe_load(fh)
    synth = dataclass_schema(SynthConfig)
    synth["properties"]["kind"] = {"const": "synthfaces"}
    schema["$defs"]["synthfaces"] = {**schema["$defs"]["synthfaces"], **synth}
    # `default: {}` in the branch itself: allOf is applied before the run's `properties`, so
    # the branch must create loss_options to fill the option defaults into.
    schema["$defs"]["run"]["allOf"] += [
        {"if": {"properties": {"method": {"const": method}}},
         "then": {"properties": {"loss_options": {**dataclass_schema(options), "default": {}}}}}
        for method, options in loss_options.OPTIONS.items()]
    return schema


def validate(config: dict, source: str = "config", schema: dict | None = None) -> dict:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises :class:`ConfigError` naming the offending key path and the file it came from.
    """
    # YAML merge keys (`<<: *run`) share nested mappings between entries: filling one run's
    # defaults must not change another's, so every entry gets its own copy first.
    unshared = json.loads(json.dumps(config))
    config.clear()
    config.update(unshared)
    both = [name for name, run in (config.get("runs") or {}).items()
            if isinstance(run, dict) and run.get("seeds") and run.get("seed", run["seeds"][0])
            != run["seeds"][0]]
    if both:
        raise ConfigError(f"{source}: runs {both} give a seed that is not the first of their "
                          f"seeds: give seeds only (its first seed is the run's own)")
    validator = _Validator(schema or load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = ".".join(str(p) for p in err.absolute_path) or "<top level>"
            lines.append(f"  {where}: {err.message}")
        raise ConfigError(
            f"{source}: invalid config\n" + "\n".join(lines)
            + "\nEvery key is documented in config/README.md."
        )
    _check_references(config, source)
    _expand_seeds(config, source)
    return config


# A replicate of a run trained with another seed: its name, and the separator no run name may
# contain otherwise.
REPLICATE = "{run}@seed{seed}"
_SEPARATOR = "@seed"


def base_run(name: str) -> str:
    """The run a replicate repeats (``softmax@seed1`` -> ``softmax``); a run is its own."""
    return name.split(_SEPARATOR)[0]


def run_settings(run: dict) -> dict:
    """A run's settings less ``seeds``: what its model and metrics depend on. ``seeds`` names
    its replicates (each a run of its own), so seeding a run retrains only the new seeds."""
    return {k: v for k, v in run.items() if k != "seeds"}


def _expand_seeds(config: dict, source: str) -> None:
    """Add a replicate run per extra seed of a run's ``seeds``, right after the run, and to
    every protocol that scores the run. A replicate starts from the same-seed replicate of its
    ``init_from`` run where that run has the seed too. Validating an expanded config again
    changes nothing."""
    runs = config.get("runs", {})
    expected = {}
    for name, run in runs.items():
        if _SEPARATOR in name:
            continue
        seeds = run.get("seeds", [run["seed"]])
        run["seed"] = seeds[0]
        expected[name] = [REPLICATE.format(run=name, seed=s) for s in seeds[1:]]
    stray = sorted(set(runs) - set(expected) - {r for reps in expected.values() for r in reps})
    if stray:
        raise ConfigError(f"{source}: runs {stray}: '{_SEPARATOR}' names the replicates that a "
                          f"run's seeds make; rename these runs")
    expanded = {}
    for name, replicates in expected.items():
        expanded[name] = runs[name]
        for replicate, seed in zip(replicates, runs[name].get("seeds", [])[1:], strict=True):
            copy = run_settings(json.loads(json.dumps(runs[name])))
            copy["seed"] = seed
            init = copy.get("init_from")
            if init is not None and seed in runs[init].get("seeds", ())[1:]:
                copy["init_from"] = REPLICATE.format(run=init, seed=seed)
            expanded[replicate] = copy
    runs.clear()
    runs.update(expanded)
    for protocol in config.get("protocols", {}).values():
        if protocol.get("runs"):
            protocol["runs"] = [r for run in protocol["runs"] if _SEPARATOR not in run
                                for r in (run, *expected[run])]


def seed_groups(config: dict) -> dict[str, list[str]]:
    """Every run (not replicate) with the runs that train it: itself, then its replicates."""
    groups: dict[str, list[str]] = {}
    for name in config["runs"]:
        groups.setdefault(base_run(name), []).append(name)
    return groups


def _check_references(config: dict, source: str) -> None:
    """What the schema cannot express: value ranges of the generator, pins against the
    registry, a folder source's path, dataset references, which datasets have pairs."""
    for name, spec in config["datasets"].items():
        if spec["kind"] == "synthfaces":
            try:
                SynthConfig.from_dict({k: v for k, v in spec.items() if k != "kind"})
            except ValueError as exc:
                raise ConfigError(f"{source}: datasets.{name}: {exc}") from exc
            continue
        try:
            check_pins(name, spec)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        if spec["kind"] == FOLDER and not Path(spec["path"]).exists():
            raise ConfigError(f"{source}: datasets.{name}.path = {spec['path']!r}: no such "
                              f"folder or archive (relative paths are from {Path.cwd()}); "
                              f"correct the path")
    known = set(dataset_names(config))
    for section in ("runs", "protocols"):
        for name, entry in config.get(section, {}).items():
            key = "train" if section == "runs" else "dataset"
            if entry[key] not in known:
                raise ConfigError(
                    f"{source}: {section}.{name}.{key} = {entry[key]!r} is not a dataset of this "
                    f"config; known: {sorted(known)}"
                )
    for name, protocol in config.get("protocols", {}).items():
        for key in ("train", "distractors"):
            if key in protocol and protocol[key] not in known:
                raise ConfigError(f"{source}: protocols.{name}.{key} = {protocol[key]!r} is "
                                  f"not a dataset of this config; known: {sorted(known)}")
    runs = config.get("runs", {})
    for name, run in runs.items():
        data_source, part = run["train"].split("/")
        if part_spec(config["datasets"][data_source], part).split == "test":
            fix = (f"set datasets.{data_source}.split: train to train on this folder"
                   if config["datasets"][data_source]["kind"] == FOLDER
                   else "train on a training set")
            raise ConfigError(f"{source}: runs.{name}.train = {run['train']!r} is an evaluation "
                              f"set (split test), which has no training images; {fix}")
    for name, run in runs.items():
        if "init_from" not in run:
            continue
        origin = runs.get(run["init_from"])
        if origin is None or run["init_from"] == name:
            raise ConfigError(f"{source}: runs.{name}.init_from = {run['init_from']!r} must be "
                              f"another run of this config; known: {sorted(runs)}")
        differ = [k for k in ("net", "net_options", "template", "embedding_dim")
                  if origin[k] != run[k]]
        if differ:
            raise ConfigError(f"{source}: runs.{name}.init_from = {run['init_from']!r} has "
                              f"another {', '.join(differ)}; a run starts only from the same net")
    for dataset in config.get("holdout", {}):
        if dataset not in known:
            raise ConfigError(f"{source}: holdout.{dataset} is not a dataset of this config; "
                              f"known: {sorted(known)}")
    for name, protocol in config.get("protocols", {}).items():
        if protocol["kind"] in PAIR_KINDS:
            _check_pairs_file(config, name, protocol, source)
    for name, protocol in config.get("protocols", {}).items():
        unknown = sorted(set(protocol.get("runs") or ()) - set(config.get("runs", {})))
        if unknown:
            raise ConfigError(f"{source}: protocols.{name}.runs names runs this config does not "
                              f"have: {unknown}; known: {sorted(config.get('runs', {}))}")
        wants_jb = any(s.startswith("joint_bayesian") for s in protocol["scorers"])
        jb_train = protocol.get("joint_bayesian", {}).get("train")
        if wants_jb and jb_train not in config.get("holdout", {}):
            raise ConfigError(
                f"{source}: protocols.{name} scores with Joint Bayesian, which trains on held-out "
                f"identities: set protocols.{name}.joint_bayesian.train to a dataset listed "
                f"under holdout (now {jb_train!r}; holdout: {sorted(config.get('holdout', {}))})")


def _check_pairs_file(config: dict, name: str, protocol: dict, source: str) -> None:
    """Fill a pair protocol's ``pairs_file`` with its dataset's own pairs file; refuse one the
    dataset does not provide, so that no evaluate job fails for want of pairs."""
    dataset = protocol["dataset"]
    data_source, part = dataset.split("/")
    spec = config["datasets"][data_source]
    own = part_spec(spec, part)
    if "pairs_file" not in protocol:
        if own.pairs is None:
            fix = (f"give datasets.{data_source}.pairs (an LFW pairs.txt or a CSV "
                   f"path_a,path_b,same[,fold])" if spec["kind"] == FOLDER
                   else "evaluate a dataset that has pairs")
            raise ConfigError(f"{source}: protocols.{name} ({protocol['kind']}) needs pairs, but "
                              f"dataset {dataset} has no pairs file: {fix}, or use a kind "
                              f"that needs only identities (lfw_identification, clustering, "
                              f"angular_fisher)")
        protocol["pairs_file"] = own.pairs
    elif protocol["pairs_file"] not in own.files:
        raise ConfigError(f"{source}: protocols.{name}.pairs_file = {protocol['pairs_file']!r} "
                          f"is not a file of dataset {dataset} (its files: {list(own.files)}); "
                          f"name one of them, or leave the key out for its own pairs")


def applicable_properties(node: dict, instance: dict) -> dict:
    """The property schemas that apply to ``instance``: ``node``'s own, overlaid by those of each
    ``allOf`` branch whose ``if`` it meets (a run's method and net bring their own defaults)."""
    props = {k: dict(v) for k, v in node.get("properties", {}).items()}
    for branch in node.get("allOf", []):
        if jsonschema.Draft202012Validator(branch["if"]).is_valid(instance):
            for name, sub in branch["then"].get("properties", {}).items():
                props[name] = {**props.get(name, {}), **sub}
    return props


def default_run(**settings: Any) -> dict:
    """One run's settings with the schema's defaults (the papers' values) filled in."""
    schema = load_schema()
    run = dict(settings)
    errors = list(_Validator({**schema["$defs"]["run"], "$defs": schema["$defs"]}).iter_errors(run))
    if errors:
        raise ConfigError("invalid run settings\n" + "\n".join(f"  {e.message}" for e in errors))
    return run


def load(path: str | Path) -> dict:
    """Read a YAML config file and validate it."""
    with open(path) as fh:
        config = yaml.safe_load(fh) or {}
    return validate(config, source=str(path))


def dataset_names(config: dict) -> list[str]:
    """Every ``source/part`` dataset the configured sources provide, e.g. ``synth/lfw``."""
    return [f"{source}/{part}" for source, spec in config["datasets"].items()
            for part in parts_of(spec)]


def evaluations(config: dict) -> list[tuple[str, str]]:
    """Every (run, protocol) the config evaluates: each protocol on its ``runs``; absent, on
    every run trained on identities (an attribute net has no face embedding to verify)."""
    identity_runs = [name for name, run in config["runs"].items()
                     if run.get("labels", "identity") == "identity"]
    return [(run, name) for name, protocol in config["protocols"].items()
            for run in protocol.get("runs") or identity_runs]


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able value: provenance for models and metrics."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
