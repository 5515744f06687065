"""``facerepro``: the library's entry points for use outside Snakemake.

    facerepro validate config/config.yaml        # schema check; prints the config with defaults
    facerepro verify FEATURES.npz PAIRS.txt      # one-off k-fold verification (or PAIRS.csv)
    facerepro verify FEATURES.npz A.jpg B.jpg    # the score of two images of the features' set

A pair naming an image without features is a clear error; ``--manifest`` (the dataset's
``manifest.parquet``) says for each such image whether it is missing or quarantined, and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import PurePosixPath

import pandas as pd
import yaml

from facerepro import features
from facerepro.config import ConfigError, load
from facerepro.data.protocols import read_pairs, within_folder
from facerepro.evaluation.verification import (
    SCORERS,
    MissingPairImages,
    pair_rows,
    verify_pairs,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facerepro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="validate a config file against the schema")
    check.add_argument("config")
    verify = sub.add_parser("verify", help="k-fold verification of a features file, or the "
                                           "score of two of its images")
    verify.add_argument("features")
    verify.add_argument("pairs", nargs="+",
                        help="a pairs file (LFW format, or CSV path_a,path_b,same[,fold]), or "
                             "two image paths within the dataset's folder (Alice/1.jpg)")
    verify.add_argument("--scorer", choices=sorted(SCORERS), default="cosine")
    verify.add_argument("--manifest", help="the dataset's manifest.parquet: why an image of "
                                           "a pair has no features")
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
        print(exc if args.manifest is None else _why_missing(exc.names, args.manifest),
              file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as exc:
        print(f"facerepro verify: {exc}", file=sys.stderr)
        return 2
    return 0


def _verify(args: argparse.Namespace) -> dict:
    """k-fold verification over a pairs file, or the score of two images."""
    feats, image_ids, _ = features.load(args.features)
    scorer = SCORERS[args.scorer]
    if len(args.pairs) == 1:
        result = verify_pairs(feats, image_ids, read_pairs(args.pairs[0]), scorer)
        result.pop("curves")
        return result
    names = [PurePosixPath(p).with_suffix("").as_posix() for p in args.pairs]
    i, j = pair_rows(image_ids, pd.DataFrame({"image1": names[:1], "image2": names[1:]}))
    return {"image1": args.pairs[0], "image2": args.pairs[1], "scorer": args.scorer,
            "score": float(scorer(feats[i], feats[j])[0])}


def _why_missing(names: list[str], manifest_path: str) -> str:
    """One line per image of a pair without features: missing from the folder, quarantined
    (and why) or kept but not aligned."""
    manifest = pd.read_parquet(manifest_path)
    rows = manifest.set_index(within_folder(manifest["image_id"].to_numpy()))
    lines = [f"{len(names)} images named by the pairs have no features:"]
    for name in names:
        if name not in rows.index:
            lines.append(f"  {name}: not in the dataset ({manifest_path} lists no such file); "
                         f"correct the pairs file or add the image")
        elif rows.at[name, "status"] != "kept":
            lines.append(f"  {name}: quarantined ({rows.at[name, 'reason']}) as "
                         f"{rows.at[name, 'path']}; replace the file or drop its pairs")
        else:
            lines.append(f"  {name}: kept but not in the features file; re-run the workflow "
                         f"(the face policy may have dropped it)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
