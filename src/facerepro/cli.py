"""``facerepro``: the library's entry points for use outside Snakemake.

    facerepro validate config/config.yaml        # schema check; prints the config with defaults
    facerepro verify FEATURES.npz PAIRS.txt      # one-off LFW-style k-fold verification
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from facerepro import features
from facerepro.config import ConfigError, load
from facerepro.data.protocols import read_pairs
from facerepro.evaluation.verification import SCORERS, verify_pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="facerepro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="validate a config file against the schema")
    check.add_argument("config")
    verify = sub.add_parser("verify", help="k-fold verification of a features file")
    verify.add_argument("features")
    verify.add_argument("pairs")
    verify.add_argument("--scorer", choices=sorted(SCORERS), default="cosine")
    args = parser.parse_args(argv)

    if args.command == "validate":
        try:
            print(yaml.safe_dump(load(args.config), sort_keys=False))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        return 0
    feats, image_ids, _ = features.load(args.features)
    result = verify_pairs(feats, image_ids, read_pairs(args.pairs), SCORERS[args.scorer])
    result.pop("curves")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
