"""Job logging: one place where every step writes its progress, warnings and timing.

A workflow job runs inside :func:`logged_step`: what the step logs with :func:`log` goes to the job's log
file and to the terminal, where each line carries the job's name (``[pixel_margin r3]``: the experiment
and round, :func:`job_name`) so that the lines of jobs running side by side can be told apart. Errors about
the user's files end the job with one clear line; the last line of a successful job is its ``timing:``
(read by benchmarks/default_run.py).

A long loop (training epochs, inference batches) reports through :class:`Progress`: a tqdm bar named after
the job when the terminal is one, and about :data:`PROGRESS_LINES` lines in all (the first step, every N-th
and the last) in the log file, and on the terminal when it is not one (Snakemake's log, a pipe).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

PathLike = str | os.PathLike[str]


#: About how many progress lines a long loop writes (:class:`Progress`): a step every N, N = total / this.
PROGRESS_LINES = 8


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

    def isatty(self) -> bool:
        """False: the stream also writes a file (a tqdm bar goes to :attr:`terminal` itself)."""
        return False


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
    """The experiment and round of a job, ``margin r3``, from its wildcards (``exp``, ``r``); the experiment
    alone for jobs of no round; None for jobs of no experiment."""
    if not hasattr(wildcards, "exp"):
        return None
    return f"{wildcards.exp} r{wildcards.r}" if hasattr(wildcards, "r") else str(wildcards.exp)


def report_every(total: int, lines: int = PROGRESS_LINES) -> int:
    """N such that reporting every N-th of ``total`` steps gives about ``lines`` lines."""
    return max(1, math.ceil(total / max(1, lines)))


class Progress:
    """Progress of a loop of ``total`` steps: a tqdm bar on a terminal, else about ``lines`` lines.

    :meth:`step` reports the first step, every N-th (:func:`report_every`) and the last with ``log``: on a
    terminal (:func:`log`'s stderr is one), these lines go to the job's log file only and a bar, named
    after the job (``[margin r3] train``), to the terminal. A ``log`` other than :func:`log` (a test's list,
    a caller's logger) always gets the lines, and no bar is drawn.
    """

    def __init__(self, total: int, what: str, log_line: Callable[[str], None] | None = None,
                 lines: int = PROGRESS_LINES) -> None:
        self.total, self.every, self.next = total, report_every(total, lines), 1
        self.log = log_line or log
        self.bar = _terminal_bar(total, what) if self.log is log else None

    def step(self, done: int, line: str, short: str = "") -> None:
        """``done`` of the total steps are done; ``line`` is their progress line, ``short`` the bar's text."""
        if self.bar is not None:
            self.bar.set_postfix_str(short, refresh=False)
            self.bar.update(done - self.bar.n)
        if done >= self.next or done >= self.total:
            self.next = (done // self.every + 1) * self.every
            if self.bar is None:
                self.log(line)
            elif isinstance(sys.stderr, _Tee):
                sys.stderr.log_file.write(line + "\n")
                sys.stderr.log_file.flush()

    def close(self) -> None:
        """End the bar (it stays on the terminal with its last state)."""
        if self.bar is not None:
            self.bar.close()


def _terminal_bar(total: int, what: str) -> Any:
    """A tqdm bar on the terminal behind stderr, named after the job; None when it is no terminal."""
    stream = sys.stderr.terminal if isinstance(sys.stderr, _Tee) else sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        return None
    from tqdm import tqdm

    prefix = sys.stderr.prefix if isinstance(sys.stderr, _Tee) else ""
    return tqdm(total=total, desc=f"{prefix}{what}", file=stream, ncols=_width(stream), leave=True)


def _width(stream: TextIO) -> int:
    """The terminal's width; 100 where it says 0 (a pseudo-terminal of no size, where tqdm would draw nothing)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns > 0 else 100


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
