"""Bring up and tear down a real single-node SLURM cluster for tests.

Uses Debian's packages (``slurmctld slurmd slurm-client munge``, SLURM 22.05) and needs root. The
whole configuration lives in a temporary directory, selected with the ``SLURM_CONF`` environment
variable and, for the ``srun`` inside jobs (which Snakemake starts without SLURM_CONF), by a
symlink ``/run/slurm/conf`` (removed on stop); ``/etc/slurm`` is never touched. The node declares
fake GPUs (``gres.conf``: ``File=/dev/null``, ``/dev/zero``, ...; one by default): ``sbatch --gpus=k`` is accepted
and GPU jobs never hold more GPUs than there are, which is what the workflow's GPU rules need to be
tested without a GPU. munged is
reused when one already answers, else started as the munge user and stopped again on ``stop()``.

Typical use::

    with SlurmCluster(tmp_path) as cluster:
        env = cluster.env()          # os.environ plus SLURM_CONF
        subprocess.run(["sbatch", ...], env=env)

Run as a script (``python tests/slurm_cluster.py up|down DIR``) to keep a cluster for manual work.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("slurmctld", "slurmd", "munged")
CLIENTS = (
    "sbatch", "squeue", "scontrol", "sinfo", "scancel", "srun", "munge", "unmunge", "runuser",
)
MUNGE_SOCKET_DIR = Path("/run/munge")
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
# Where SLURM clients look when SLURM_CONF is unset and /etc/slurm/slurm.conf is missing (the
# configless cache). Snakemake's job step removes SLURM_* variables, SLURM_CONF included, before
# its nested `srun`, so inside a job only this path finds our configuration.
RUN_CONF_DIR = Path("/run/slurm/conf")
HEADER = "# written by tests/slurm_cluster.py"
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")


def conflicting_config() -> str | None:
    """Why a throw-away cluster cannot run here (a SLURM installation is configured), or None."""
    if SYSTEM_CONF.exists():
        return f"{SYSTEM_CONF} exists: srun inside jobs would read it, not the test cluster's"
    if RUN_CONF_DIR.is_symlink() and not _ours(RUN_CONF_DIR / "slurm.conf"):
        return f"{RUN_CONF_DIR} links to another SLURM configuration"
    if RUN_CONF_DIR.exists() and not RUN_CONF_DIR.is_symlink():
        return f"{RUN_CONF_DIR} exists (a configless SLURM node?)"
    return None


def _ours(conf: Path) -> bool:
    """True for a configuration written by this module (or a dangling link to one)."""
    try:
        return conf.read_text().startswith(HEADER)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def missing_binaries() -> list[str]:
    """Names of the SLURM/munge programs that are not installed."""
    return [name for name in DAEMONS + CLIENTS if _which(name) is None]


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal not found in /proc/meminfo")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_pidfile(pidfile: Path, timeout: float = 10.0) -> None:
    """SIGTERM the process named in ``pidfile``, SIGKILL it after ``timeout`` seconds."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    if not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class SlurmCluster:
    """One node (this host), partitions ``cpu`` (default) and ``gpu``, ``gpus`` fake GPUs (default 1).

    ``cpus`` and ``mem_mb`` default to this machine's CPU count and its memory minus 2 GB.
    ``SlurmdParameters=config_overrides`` lets the node declare more than the hardware has (the
    jobs then share the real CPUs), so a profile asking for more CPUs than this machine has can
    still be tested.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        cpus: int | None = None,
        mem_mb: int | None = None,
        gpus: int = 1,
        min_job_age: int = 600,
    ) -> None:
        self.dir = Path(workdir).resolve()
        self.host = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.mem_mb = mem_mb or max(1000, _mem_total_mb() - 2048)
        self.gpus = gpus
        self.min_job_age = min_job_age
        self.conf = self.dir / "slurm.conf"
        self.started_munge = False
        self.startup_seconds: float | None = None

    # -- configuration -------------------------------------------------------------------------
    def write_config(self) -> None:
        d = self.dir
        for sub in ("state", "spool", "log", "run"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, d_port = _free_port(), _free_port()
        self.conf.write_text(
            f"""\
{HEADER}: a throw-away single-node cluster
ClusterName=alsegtest
SlurmctldHost={self.host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
DefMemPerCPU=1000
MinJobAge={self.min_job_age}
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.mem_mb} Gres=gpu:{self.gpus} State=UNKNOWN
PartitionName=cpu Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={self.host} Default=NO MaxTime=INFINITE State=UP
"""
        )
        # Fake GPU devices: character devices that exist everywhere, one per GPU (slurmd refuses a device
        # named twice and a plain file). With only Count=N (no File) the node drains.
        if self.gpus > len(FAKE_GPU_DEVICES):
            raise ValueError(f"at most {len(FAKE_GPU_DEVICES)} fake GPUs")
        devices = FAKE_GPU_DEVICES[: self.gpus]
        files = ",".join(devices)
        (d / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.host} Name=gpu File={files}\n"
        )

    def link_run_conf(self) -> None:
        """Point /run/slurm/conf at our configuration (see RUN_CONF_DIR)."""
        RUN_CONF_DIR.parent.mkdir(parents=True, exist_ok=True)
        if RUN_CONF_DIR.is_symlink():
            RUN_CONF_DIR.unlink()  # left over from an earlier test cluster
        RUN_CONF_DIR.symlink_to(self.dir)

    def unlink_run_conf(self) -> None:
        if RUN_CONF_DIR.is_symlink() and RUN_CONF_DIR.readlink() == self.dir:
            RUN_CONF_DIR.unlink()

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    # -- munge ---------------------------------------------------------------------------------
    def _munge_works(self) -> bool:
        try:
            cred = subprocess.run(
                ["munge", "-n"], capture_output=True, timeout=5, check=True
            ).stdout
            subprocess.run(
                ["unmunge"], input=cred, capture_output=True, timeout=5, check=True
            )
            return True
        except (subprocess.SubprocessError, FileNotFoundError):
            return False

    def start_munge(self) -> None:
        if self._munge_works():
            return  # a munged is already running (system service or earlier test)
        user = pwd.getpwnam("munge")
        MUNGE_SOCKET_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chown(MUNGE_SOCKET_DIR, user.pw_uid, user.pw_gid)
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run(["mungekey", "--create", "--keyfile", str(key)], check=True)
            os.chown(key, user.pw_uid, user.pw_gid)
            key.chmod(0o400)
        pidfile = MUNGE_SOCKET_DIR / "munged.pid"
        subprocess.run(
            [_which("runuser"), "-u", "munge", "--", _which("munged"), "--pid-file", str(pidfile)],
            check=True,
        )
        self.started_munge = True
        self._wait(self._munge_works, 15, "munged did not answer")

    # -- daemons -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> SlurmCluster:
        t0 = time.monotonic()
        missing = missing_binaries()
        if missing:
            raise RuntimeError(f"SLURM/munge programs not found: {', '.join(missing)}")
        conflict = conflicting_config()
        if conflict:
            raise RuntimeError(f"cannot start a test SLURM cluster: {conflict}")
        self.write_config()
        self.link_run_conf()
        self.start_munge()
        env = self.env()
        # -c: clear previous state (jobs, node states); -i: ignore errors reading old state
        subprocess.run([_which("slurmctld"), "-c", "-i", "-f", str(self.conf)], env=env, check=True)
        subprocess.run([_which("slurmd"), "-f", str(self.conf)], env=env, check=True)
        try:
            self._wait(self.node_idle, timeout, "the SLURM node did not become idle")
        except Exception:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def node_state(self) -> str:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], env=self.env(), capture_output=True, text=True
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    def node_idle(self) -> bool:
        for name in ("slurmctld", "slurmd"):
            pidfile = self.dir / "run" / f"{name}.pid"
            try:
                alive = _pid_alive(int(pidfile.read_text().strip()))
            except (FileNotFoundError, ValueError):
                alive = True  # the daemon has not written its pid file yet
            if not alive:
                raise RuntimeError(f"{name} exited\n{self.diagnostics()}")
        return self.node_state().splitlines()[:1] == ["idle"]

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.25)
        raise RuntimeError(f"{what} within {timeout:.0f} s\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        parts = [f"node state: {self.node_state()!r}"]
        for name in ("slurmctld.log", "slurmd.log"):
            log = self.dir / "log" / name
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-30:]
                parts.append(f"--- {log} (last 30 lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel this cluster's jobs and stop its daemons (by their pid files)."""
        if self.conf.exists():
            subprocess.run(
                ["scancel", "--full", "--user", pwd.getpwuid(os.geteuid()).pw_name],
                env=self.env(),
                capture_output=True,
                timeout=30,
            )
        _stop_pidfile(self.dir / "run" / "slurmd.pid")
        _stop_pidfile(self.dir / "run" / "slurmctld.pid")
        self.unlink_run_conf()
        if self.started_munge:
            _stop_pidfile(MUNGE_SOCKET_DIR / "munged.pid")
            self.started_munge = False

    # -- job inspection ------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, str]]:
        """All jobs slurmctld still knows (finished ones stay for ``MinJobAge`` seconds), as the
        key=value fields of ``scontrol show job -o -d`` (the details add ``JOB_GRES``, the GPUs a job
        got; ``TresPerJob`` is what it asked for)."""
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", "-d"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        jobs = []
        for line in out.splitlines():
            line = line.strip()
            if not line or line.startswith("No jobs"):
                continue
            fields: dict[str, str] = {}
            key = None
            for token in line.split(" "):
                if "=" in token and not token.startswith("="):
                    key, _, value = token.partition("=")
                    fields[key] = value
                elif key is not None:  # a value with spaces (e.g. Command, Comment)
                    fields[key] += " " + token
            jobs.append({k: v.strip() for k, v in fields.items()})
        return jobs

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("up", "down"):
        print(f"usage: {argv[0]} up|down DIR", file=sys.stderr)
        return 2
    cluster = SlurmCluster(argv[2])
    if argv[1] == "up":
        cluster.start()
        print(f"cluster up in {cluster.startup_seconds:.1f} s; export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
