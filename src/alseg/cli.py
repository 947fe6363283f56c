"""The ``alseg`` command: utilities around the workflow (the workflow itself runs with ``snakemake``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml


def _make_synthetic(args: argparse.Namespace) -> int:
    from alseg.data import make_synthetic, write_folder_dataset, SYNTHETIC_CLASSES

    splits = make_synthetic(args.seed)
    write_folder_dataset(args.out, splits, SYNTHETIC_CLASSES, ignore_index=255)
    print(f"wrote the synthetic dataset (seed {args.seed}) in the folder layout to {args.out}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from alseg.config import ConfigError, resolve_config

    with open(args.config, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    for item in args.set or []:
        key, _, value = item.partition("=")
        config[key] = yaml.safe_load(value)
    try:
        resolved = resolve_config(config)
    except ConfigError as error:
        print(f"{args.config}: {error}", file=sys.stderr)
        return 1
    print(yaml.safe_dump(resolved, sort_keys=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "make-synthetic", help="write the embedded synthetic dataset as a generic image/mask folder"
    )
    synth.add_argument("out", type=Path, help="output folder (images/, masks/, splits/)")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(run=_make_synthetic)

    check = commands.add_parser(
        "check-config", help="validate a config and print every experiment with its defaults merged"
    )
    check.add_argument("config", type=Path, nargs="?", default=Path("config.yaml"))
    check.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a top-level key")
    check.set_defaults(run=_check_config)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
