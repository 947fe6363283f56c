"""The ``alseg`` command: utilities around the workflow (the workflow itself runs with ``snakemake``)."""

from __future__ import annotations

import argparse
import errno
import getpass
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from alseg.regions import RegionSource


def _make_synthetic(args: argparse.Namespace) -> int:
    from alseg.data import SYNTHETIC_CLASSES, make_synthetic, write_folder_dataset

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


def _audit(args: argparse.Namespace) -> int:
    """Audit a run; print the per-round table, then every finding; exit 1 when any is found."""
    from alseg.atomic import write_text_atomic
    from alseg.audit import audit_run, compare_items, load_run_config, markdown_report, run_experiments
    from alseg.audit.run import print_progress
    from alseg.audit.summary import COMPARE_COLUMNS, SUMMARY_COLUMNS, markdown_table, summary_rows, text_table
    from alseg.config import ConfigError

    try:
        config = load_run_config(args.configfile or [], args.results)
        names = list(dict.fromkeys([*(args.experiment or []), *(args.compare or [])]))
        experiments, notes = run_experiments(config, names)
    except ConfigError as err:
        print(f"alseg audit: {err}", file=sys.stderr)
        return 2
    if not experiments:
        print(f"alseg audit: {args.results} holds no round of the config's experiments", file=sys.stderr)
        return 2
    report = audit_run(config, experiments, args.with_models, progress=print_progress)
    report.notes[:0] = notes
    print(text_table(SUMMARY_COLUMNS, summary_rows(report.summaries)))
    comparison = None
    if args.compare:
        a, b = args.compare
        first, rows = compare_items(a, b, report.items)
        parted = f"{a} (A) and {b} (B) first ask different items in {first}" if first else \
            f"{a} (A) and {b} (B) ask the same items in every round"
        print(f"\n{parted}:\n" + text_table(COMPARE_COLUMNS, rows))
        comparison = parted + ".\n\n" + markdown_table(COMPARE_COLUMNS, rows)
    for note in report.notes:
        print(f"note: {note}")
    for finding in report.findings:
        print(f"FINDING {finding}")
    rounds = len(report.summaries)
    print(f"{len(report.findings)} findings in {rounds} rounds of {len(experiments)} experiments"
          if report.findings else f"no findings: the {rounds} rounds of {len(experiments)} experiments agree")
    if args.out:
        write_text_atomic(args.out, markdown_report(str(args.results), report.findings, report.notes,
                                                    report.summaries, comparison))
        print(f"wrote {args.out}")
    return 1 if report.findings else 0


DEFAULT_PORT = 8765


def _region_source(args: argparse.Namespace) -> RegionSource | None:
    """The region source of ``--regions`` for the queries' units (None without it): a base superpixel
    file shows each query's merged region when the round's side file is beside ``queries.csv``."""
    from alseg.queries import read_queries
    from alseg.regions import regions_from_file
    from alseg.units import unit_of_row

    if not args.regions:
        return None
    for name in dict.fromkeys(read_queries(args.queries)["unit"].tolist()):
        source = unit_of_row(name).region_source(args.queries, args.regions, args.regions_key)
        if source is not None:
            return source
    return regions_from_file(args.regions, args.regions_key)


def _default_annotator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"


def _annotate(args: argparse.Namespace) -> int:
    from alseg.annotate import AnnotationServer, AnnotationSession

    session = AnnotationSession(
        args.queries,
        args.dataset,
        annotator=args.annotator or _default_annotator(),
        answers_path=args.out,
        regions=_region_source(args),
    )
    if session.done.is_set():
        print(f"every query was answered already; wrote {session.answers_path}")
        return 0
    try:
        server = AnnotationServer(session, DEFAULT_PORT if args.port is None else args.port)
    except OSError as err:
        if args.port is not None or err.errno != errno.EADDRINUSE:
            raise
        server = AnnotationServer(session, 0)  # the default port is taken: any free one
    state = session.state()
    print(
        f"annotating {session.total} queries of {args.queries} ({state['answered']} answered so far) as "
        f"{session.annotator!r}\nopen {server.url} (Ctrl-C stops; progress is saved after every answer)",
        flush=True,
    )
    _stop_on_signals()
    try:
        server.serve_until_done(open_browser=not args.no_browser)
    except KeyboardInterrupt:
        answered = session.state()["answered"]
        print(
            f"\nstopped: {answered} of {session.total} answers kept in {session.progress_path}; "
            "run the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(f"done: wrote {session.answers_path} ({session.total} answers)")
    return 0


def _stop_on_signals() -> None:
    """Make Ctrl-C, ``kill -INT`` and ``kill -TERM`` all stop the server with its "stopped" message.

    A shell starts background jobs (``&``, nohup, scripts) with SIGINT ignored, and Python then keeps it
    ignored: without this, such a server could only be killed, without a word on what was kept.
    """

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def _export_labelstudio(args: argparse.Namespace) -> int:
    from alseg.annotate.labelstudio import export_tasks

    export = export_tasks(
        args.queries, args.dataset, args.out, image_root=args.image_root, regions=_region_source(args)
    )
    print(
        f"wrote {export.task_count} Label Studio tasks to {export.tasks}, the labelling config to "
        f"{export.config} and {export.image_count} images to {export.image_dir}/"
    )
    return 0


def _import_labelstudio(args: argparse.Namespace) -> int:
    from alseg.annotate.labelstudio import import_answers
    from alseg.data import dataset_info

    classes = dataset_info(args.dataset).classes if args.dataset else None
    out = args.out or args.queries.with_name("answers.csv")
    count = import_answers(args.export, args.queries, out, classes=classes, annotator=args.annotator)
    print(f"wrote {out} ({count} answers from {args.export})")
    return 0


def _add_region_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--regions", type=Path, metavar="FILE",
        help="superpixel label maps of the pool, (N, H, W) region ids: HDF5 (see --regions-key) or .npy; "
        "needed for superpixel queries",
    )
    parser.add_argument(
        "--regions-key", metavar="KEY",
        help="dataset of (N, H, W) region ids in the HDF5 --regions file (default: a base superpixel file's "
        "/labels + /offsets, the superpixel column being a global id; else 'superpixels')",
    )


def _add_human_commands(commands: argparse._SubParsersAction) -> None:
    annotate = commands.add_parser(
        "annotate",
        help="answer a round's queries in a local keyboard-only web page (writes answers.csv)",
        description="Serve a local page (127.0.0.1) that shows one query at a time with the keys that answer it "
        "(the class keys 1-9, 0, a, b, ..., or what the query's unit asks, such as y/n for a yes-no question); "
        "s or Space skips, Backspace or u undoes. Progress is saved after every answer in answers.partial.json; "
        "rerun the command to resume. answers.csv is written once every query is answered, and never overwritten.",
    )
    annotate.add_argument("queries", type=Path, help="the round's queries.csv")
    annotate.add_argument("--dataset", type=Path, required=True, help="prepared dataset (results/datasets/<name>.h5)")
    annotate.add_argument("--annotator", help="name recorded with each answer (default: the user name)")
    annotate.add_argument("--port", type=int, help=f"port on 127.0.0.1 (default {DEFAULT_PORT}, or a free one)")
    annotate.add_argument("--no-browser", action="store_true", help="print the URL, do not open a browser")
    annotate.add_argument("--out", type=Path, help="answers file (default: answers.csv beside queries.csv)")
    _add_region_options(annotate)
    annotate.set_defaults(run=_annotate)

    export = commands.add_parser(
        "export-labelstudio", help="write a round's queries as Label Studio tasks (JSON), config and images"
    )
    export.add_argument("queries", type=Path, help="the round's queries.csv")
    export.add_argument("--dataset", type=Path, required=True, help="prepared dataset (results/datasets/<name>.h5)")
    export.add_argument("--out", type=Path, required=True, help="tasks file to write (tasks.json)")
    export.add_argument(
        "--image-root", metavar="URL",
        help="URL prefix under which Label Studio reaches <out stem>_images/ (default: its local-files URL)",
    )
    _add_region_options(export)
    export.set_defaults(run=_export_labelstudio)

    imp = commands.add_parser(
        "import-labelstudio", help="turn a Label Studio JSON export into a validated answers.csv"
    )
    imp.add_argument("export", type=Path, help="Label Studio export, JSON (or JSON-MIN) format")
    imp.add_argument("queries", type=Path, help="the round's queries.csv")
    imp.add_argument("--out", type=Path, help="answers file (default: answers.csv beside queries.csv)")
    imp.add_argument("--dataset", type=Path, help="prepared dataset, for the class names (default: from the tasks)")
    imp.add_argument("--annotator", help="name to record instead of Label Studio's completed_by")
    imp.set_defaults(run=_import_labelstudio)


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

    audit = commands.add_parser(
        "audit", help="check that every round's files of a run agree, and summarise the run",
        description="Check every round of every experiment: queries and answers match one to one, nothing is "
        "asked twice, answers are valid, labels.npz is the replay of the answers (costs included), each round's "
        "queries were scored by the previous round's model, model files, dumps and training digests agree, a "
        "person's answers are the ones accepted, and metrics.json, the learning curves and the comparison "
        "tables agree. Prints a per-round summary and every finding; exits 1 when anything disagrees "
        "(docs/audit.md).",
    )
    audit.add_argument("results", type=Path, help="the run's results folder (the config's results:)")
    audit.add_argument("--configfile", type=Path, action="append", metavar="FILE",
                       help="the run's config, as given to snakemake (repeatable; default: ./config.yaml)")
    audit.add_argument("--experiment", action="append", metavar="NAME", help="audit only this experiment (repeatable)")
    audit.add_argument("--compare", nargs=2, metavar=("A", "B"),
                       help="also show the first round where A's and B's queries differ and their overlap per round")
    audit.add_argument("--out", type=Path, metavar="FILE", help="also write the report as Markdown")
    audit.add_argument("--with-models", action="store_true",
                       help="also recompute training digests that need the previous model (sieving; imports torch)")
    audit.set_defaults(run=_audit)

    _add_human_commands(commands)

    args = parser.parse_args(argv)
    if args.command in ("annotate", "export-labelstudio", "import-labelstudio"):
        return _run_reporting_errors(args)
    return int(args.run(args))


def _run_reporting_errors(args: argparse.Namespace) -> int:
    """Run a command; a user error (bad file, answers that exist) prints one message, status 1."""
    from alseg.annotate import AnnotationError, ProgressError, RegionError
    from alseg.data import DatasetError
    from alseg.queries import AnswerFileError

    try:
        return int(args.run(args))
    except (
        AnnotationError, AnswerFileError, DatasetError, ProgressError, RegionError, FileExistsError,
        FileNotFoundError,
    ) as err:
        print(f"alseg {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
