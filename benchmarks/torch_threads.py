"""Training-step time of the default model by torch threads and OpenMP wait policy, with and without
another busy process on the machine.

Each measurement runs in a fresh interpreter (``OMP_WAIT_POLICY`` is read when torch loads OpenMP):
it times ``--steps`` Adam steps of the default small U-Net (width 16, 8 classes) on a batch of
8 x 3 x 64 x 64, after 3 warm-up steps. "Busy" runs a pure-Python busy loop (``nice -n 19``) on the
machine for the duration of the measurement, as a second job, a test run or any other program would.

Usage::

    python benchmarks/torch_threads.py [--steps 20] [--width 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

WORKER = """
import sys, time, torch
from alseg.models import build_model
threads, steps, width = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = build_model({"name": "small_unet", "width": width, "dropout": 0.1}, 8)
optimiser = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.randn(8, 3, 64, 64)
target = torch.randint(0, 8, (8, 64, 64))
def step():
    optimiser.zero_grad()
    torch.nn.functional.cross_entropy(model(x), target).backward()
    optimiser.step()
for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print((time.perf_counter() - start) / steps)
"""


def step_seconds(threads: int, policy: str | None, steps: int, width: int) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    done = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(steps), str(width)],
                          env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()

    print(f"cores available: {len(os.sched_getaffinity(0))}; load average before: {os.getloadavg()[0]:.2f}")
    print("\n| other load | torch threads | OMP_WAIT_POLICY | ms per training step |")
    print("|---|---:|---|---:|")
    for busy in (False, True):
        competitor = None
        if busy:
            competitor = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
        try:
            for threads, policy in ((1, None), (2, None), (2, "PASSIVE")):
                ms = 1000 * step_seconds(threads, policy, args.steps, args.width)
                label = "one busy process (nice 19)" if busy else "none"
                print(f"| {label} | {threads} | {policy or 'unset (active)'} | {ms:.1f} |", flush=True)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()


if __name__ == "__main__":
    main()
