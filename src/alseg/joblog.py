"""Job logging: one place where every step writes its progress, warnings and timing.

A workflow job runs inside :func:`logged_step`: what the step logs with :func:`log` goes to the job's log
file and to the terminal, where each line carries the job's name (``[pixel_margin]``, the experiment:
its rounds run one after the other) so that the lines of jobs running side by side can be told apart. Errors about the user's files end the job with one
clear line; the last line of a successful job is its ``timing:`` (read by benchmarks/default_run.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

PathLike = str | os.PathLike[str]


def log(message: str) -> None:
    """Write one progress or warning line to stderr (Snakemake shows it and keeps it in the job log)."""
    print(message, file=sys.stderr, flush=True)


class _Tee:
    """A text stream that writes every line to a log file as is and to the terminal behind a prefix."""

    def __init__(self, terminal: TextIO, log_file: TextIO, prefix: str = "") -> None:
        self.terminal, self.log_file, self.prefix = terminal, log_file, prefix
        self._at_line_start = True

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self.log_file.flush()
        self.terminal.write(self._prefixed(text) if self.prefix else text)
        self.terminal.flush()
        return len(text)

    def _prefixed(self, text: str) -> str:
        out = []
        for line in text.splitlines(keepends=True):
            out.append(self.prefix + line if self._at_line_start else line)
            self._at_line_start = line.endswith("\n")
        return "".join(out)

    def flush(self) -> None:
        self.terminal.flush()
        self.log_file.flush()


@contextlib.contextmanager
def logged_step(log_path: PathLike, job: str | None = None) -> Iterator[None]:
    """Run a step with stderr copied to ``log_path``; report input errors as one clear line.

    Parameters
    ----------
    log_path : path
        The job's log file (Snakemake's ``log:``), rewritten.
    job : str, optional
        A short name of the job (its experiment) put before each line on the terminal, in brackets.

    Errors about the user's data or files (ValueError, OSError and their subclasses, such as
    DatasetError or AnswerFileError) end the job with ``error: <message>`` and exit status 1; anything
    else is a bug and keeps its traceback.
    """
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    start_up = process_age()
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log_file:
        original = sys.stderr
        sys.stderr = _Tee(original, log_file, f"[{job}] " if job else "")  # type: ignore[assignment]
        try:
            yield
            if start_up is not None:
                log(f"timing: start-up {start_up:.2f} s, step {time.perf_counter() - started:.2f} s")
        except (ValueError, OSError) as exc:
            log(f"error: {exc}")
            raise SystemExit(1) from exc
        finally:
            sys.stderr = original


def job_name(wildcards: Any) -> str | None:
    """The experiment of a job, from its wildcards (``exp``); None for jobs of no experiment."""
    return str(wildcards.exp) if hasattr(wildcards, "exp") else None


def process_age() -> float | None:
    """Seconds since this process started (interpreter, Snakemake's script preamble, imports).

    Linux only (``/proc``); None elsewhere.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as stat, open("/proc/uptime", encoding="ascii") as up:
            start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
            uptime = float(up.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
