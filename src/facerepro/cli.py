"""``facerepro``: the library's entry points for use outside Snakemake.

    facerepro validate config/config.yaml        # schema check; prints the config with defaults
    facerepro verify FEATURES.npz PAIRS.txt      # one-off k-fold verification (or PAIRS.csv)
    facerepro verify FEATURES.npz A.jpg B.jpg    # the score of two images of the features' set
    facerepro verify FOLDER PAIRS.csv --run softmax   # a folder of photos, embedded by a run

A folder (or archive) of person folders is cleaned, aligned (MTCNN, or ``--landmarks``) and
embedded with the run's trained net as the workflow would (:mod:`facerepro.embed_folder`); the
answer then also counts quarantined photos and the face policy's fallbacks, choices and drops.
A pair naming an image without features is a clear error; ``--manifest`` (the dataset's
``manifest.parquet``; a folder's own otherwise) says for each such image whether it is
missing or quarantined, and why.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import yaml

from facerepro import features
from facerepro.align.mtcnn_weights import WeightsError
from facerepro.config import ConfigError, load
from facerepro.data.protocols import read_pairs, within_folder
from facerepro.evaluation.verification import (
    SCORERS,
    MissingPairImages,
    pair_rows,
    verify_pairs,
)
from facerepro.threads import use_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facerepro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="validate a config file against the schema")
    check.add_argument("config")
    verify = sub.add_parser("verify", help="k-fold verification of a features file or a "
                                           "folder of photos, or the score of two images")
    verify.add_argument("source", help="a features file (.npz), or a folder or archive of "
                                       "person folders (with --run)")
    verify.add_argument("pairs", nargs="+",
                        help="a pairs file (LFW format, or CSV path_a,path_b,same[,fold]), or "
                             "two image paths within the dataset's folder (Alice/1.jpg)")
    verify.add_argument("--scorer", choices=sorted(SCORERS), default="cosine")
    verify.add_argument("--manifest", help="the dataset's manifest.parquet: why an image of "
                                           "a pair has no features")
    photos = verify.add_argument_group("a folder of photos")
    photos.add_argument("--run", help="the trained run whose net embeds the folder")
    photos.add_argument("--config", default="config/config.yaml",
                        help="the config that defines the run (its crop, align.* settings)")
    photos.add_argument("--layout", choices=["lfw", "casia"], default="lfw",
                        help="person folders named by name (lfw) or by number (casia)")
    photos.add_argument("--landmarks", help="a landmarks file (Alice/1.jpg x1 y1 ... x5 y5) "
                                            "to use instead of MTCNN")
    photos.add_argument("--work", help="keep the cleaned, aligned and embedded folder here "
                                       "(default: a temporary folder, removed after)")
    photos.add_argument("--device", default="cpu")
    photos.add_argument("--threads", type=int,
                        help="threads to compute on (default: the config's cpu_threads, as "
                             "the workflow's features jobs, so the features are the same)")
    args = parser.parse_args(argv)

    if args.command == "validate":
        try:
            print(yaml.safe_dump(load(args.config), sort_keys=False))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    if len(args.pairs) > 2:
        parser.error("verify takes one pairs file or two image paths")
    try:
        print(json.dumps(_verify(args), indent=1))
    except MissingPairImages as exc:
        print(exc if args.manifest is None else
              _why_missing(exc.names, pd.read_parquet(args.manifest), args.manifest),
              file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, ConfigError, WeightsError) as exc:
        print(f"facerepro verify: {exc}", file=sys.stderr)
        return 2
    return 0


def _verify(args: argparse.Namespace) -> dict:
    """k-fold verification over a pairs file, or the score of two images, of a features file
    or of a folder of photos."""
    if Path(args.source).suffix == ".npz":
        feats, image_ids, _ = features.load(args.source)
        return _score(args, feats, image_ids)
    if args.run is None:
        raise ValueError(f"{args.source} is not a features file (.npz): a folder of photos "
                         f"needs --run, the trained run whose net embeds it")
    config = load(args.config)
    threads = config["cpu_threads"] if args.threads is None else args.threads
    use_threads(threads)
    from facerepro.embed_folder import embed_folder

    work = nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(
        prefix="facerepro_verify_")
    with work as folder:
        found = embed_folder(args.source, config, args.run, folder, args.layout,
                             args.landmarks, args.device, threads)
        feats, image_ids, _ = features.load(found.features)
    try:
        result = _score(args, feats, image_ids)
    except MissingPairImages as exc:
        raise ValueError(_why_missing(exc.names, found.manifest, args.source)) from None
    status = found.manifest["status"]
    result["images"] = {"found": len(status), "kept": int((status == "kept").sum()),
                        "quarantined": int((status != "kept").sum())}
    result["faces"] = {key: found.faces[key] for key in ("no_face", "multi_face", "counts")}
    return result


def _score(args: argparse.Namespace, feats: np.ndarray, image_ids: np.ndarray) -> dict:
    scorer = SCORERS[args.scorer]
    if len(args.pairs) == 1:
        result = verify_pairs(feats, image_ids, read_pairs(args.pairs[0]), scorer)
        result.pop("curves")
        return result
    names = [PurePosixPath(p).with_suffix("").as_posix() for p in args.pairs]
    i, j = pair_rows(image_ids, pd.DataFrame({"image1": names[:1], "image2": names[1:]}))
    return {"image1": args.pairs[0], "image2": args.pairs[1], "scorer": args.scorer,
            "score": float(scorer(feats[i], feats[j])[0])}


def _why_missing(names: list[str], manifest: pd.DataFrame, where: str) -> str:
    """One line per image of a pair without features: missing from the folder, quarantined
    (and why) or kept but not aligned (``where``: the manifest's or the folder's path)."""
    rows = manifest.set_index(within_folder(manifest["image_id"].to_numpy()))
    lines = [f"{len(names)} images named by the pairs have no features:"]
    for name in names:
        if name not in rows.index:
            lines.append(f"  {name}: not in the dataset ({where} holds no such file); "
                         f"correct the pairs file or add the image")
        elif rows.at[name, "status"] != "kept":
            lines.append(f"  {name}: quarantined ({rows.at[name, 'reason']}) as "
                         f"{rows.at[name, 'path']}; replace the file or drop its pairs")
        else:
            lines.append(f"  {name}: kept but not aligned: align.no_face or align.multi_face "
                         f"dropped it (no face, or several); drop its pairs or change the "
                         f"policy")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
