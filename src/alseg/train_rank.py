"""One rank of a round's training in several processes: ``python -m alseg.train_rank REQUEST.json``.

:func:`alseg.model_job.train` starts k of these with torchrun (:func:`alseg.distributed.launch`) when
``training.gpus`` is k > 1; ``REQUEST.json`` holds the arguments of :func:`alseg.model_job.train_on_rank`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from alseg.distributed import process_group, rank_threads
from alseg.joblog import log
from alseg.model_job import limit_threads, train_on_rank


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        log("usage: python -m alseg.train_rank REQUEST.json (started by torchrun from alseg.model_job.train)")
        return 2
    request = json.loads(Path(argv[0]).read_text())
    limit_threads(rank_threads())
    from alseg.models import resolve_device

    cuda = resolve_device(request["settings"]["training"].get("device", "auto")).type == "cuda"
    with process_group(cuda) as world:
        try:
            train_on_rank(**request)
        except (ValueError, OSError) as exc:  # the user's data: one line, as in a single-process job
            log(f"error (rank {world.rank}): {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
