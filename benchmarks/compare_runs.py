"""Compare the round files of two workflow runs: are they the same results?

For every experiment and round present in both results folders, compares ``queries.csv`` and
``answers.csv`` byte for byte, every array of ``labels.npz`` (names, dtypes, values) and ``metrics.json``
(its parsed content). A refactor that keeps behaviour must leave them equal on the same machine and seeds;
this is how that is shown (docs/architecture.md). Usage::

    python benchmarks/compare_runs.py BEFORE/results AFTER/results [--experiments a b ...]

Prints one line per experiment and round, and every difference; exits 1 when any is found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FILES = ("queries.csv", "answers.csv", "labels.npz", "metrics.json")


def _labels(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def differences(before: Path, after: Path) -> list[str]:
    """What differs between the round files of two round folders (empty: the same)."""
    found = []
    for name in FILES:
        a, b = before / name, after / name
        if not a.is_file() or not b.is_file():
            found.append(f"{name}: only in {'after' if b.is_file() else 'before'}" if a.is_file() != b.is_file()
                         else f"{name}: in neither")
            continue
        if name.endswith(".csv") and a.read_bytes() != b.read_bytes():
            found.append(f"{name}: the bytes differ")
        elif name == "metrics.json" and json.loads(a.read_text()) != json.loads(b.read_text()):
            ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
            keys = sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))
            found.append(f"{name}: {', '.join(keys)} differ")
        elif name == "labels.npz":
            la, lb = _labels(a), _labels(b)
            for key in sorted(set(la) | set(lb)):
                if key not in la or key not in lb:
                    found.append(f"labels.npz: array {key} only in {'after' if key in lb else 'before'}")
                elif la[key].dtype != lb[key].dtype or not np.array_equal(la[key], lb[key]):
                    found.append(f"labels.npz: array {key} differs ({la[key].dtype} {la[key].shape} against "
                                 f"{lb[key].dtype} {lb[key].shape})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path, help="the first run's results folder")
    parser.add_argument("after", type=Path, help="the second run's results folder")
    parser.add_argument("--experiments", nargs="*", help="only these experiments (default: those in both)")
    args = parser.parse_args(argv)
    experiments = args.experiments or sorted(
        p.name for p in args.before.iterdir() if (p / "round_0").is_dir() and (args.after / p.name / "round_0").is_dir())
    failed = 0
    for experiment in experiments:
        rounds = sorted((p.name for p in (args.before / experiment).glob("round_*")), key=lambda n: int(n[6:]))
        for name in rounds:
            found = differences(args.before / experiment / name, args.after / experiment / name)
            print(f"{experiment} {name}: " + ("identical " + ", ".join(FILES) if not found else "DIFFERENT"))
            for line in found:
                print(f"    {line}")
            failed += bool(found)
    print(f"{failed} round(s) differ" if failed else "every round file is identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
