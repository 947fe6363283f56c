"""How much memory this process may still use: the machine's available memory, or less where a cgroup (a
SLURM job, a container) limits it. Steps whose threads each need much memory (SEEDS superpixels) size their
threads with it. Linux only: elsewhere, and where nothing can be read, it is unknown (None).
"""

from __future__ import annotations

from pathlib import Path

#: cgroup v2 and v1: the memory controller's limit, usage and statistics files, and the statistic of page
#: cache that the kernel reclaims before it runs out (counted as available, as ``free`` does)
_CGROUP_FILES = {2: ("memory.max", "memory.current", "inactive_file"),
                 1: ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}
#: cgroup v1 writes "no limit" as a number close to 2**63
_NO_LIMIT = 1 << 60


def available_bytes(proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes this process may still allocate: the smaller of the machine's ``MemAvailable`` and, for each
    memory cgroup it is in, its limit less its usage (reclaimable page cache not counted as used).

    Parameters
    ----------
    proc, cgroup_root : Path
        Where ``/proc`` and the cgroup file systems are (other roots for tests).

    Returns
    -------
    int or None
        None when nothing could be read (not Linux).
    """
    found = []
    machine = _meminfo_available(proc / "meminfo")
    if machine is not None:
        found.append(machine)
    for folder, version in _cgroup_folders(proc / "self" / "cgroup", cgroup_root):
        limit_name, usage_name, cache_name = _CGROUP_FILES[version]
        limit, usage = _read_int(folder / limit_name), _read_int(folder / usage_name)
        if limit is None or usage is None or limit >= _NO_LIMIT:
            continue
        found.append(max(limit - usage + _stat(folder / "memory.stat", cache_name), 0))
    return min(found) if found else None


def _cgroup_folders(cgroup_file: Path, root: Path) -> list[tuple[Path, int]]:
    """The memory cgroup folders of this process (its own, then the mount's root as seen from a container)."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return []
    folders = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            base, version = root, 2
        elif "memory" in controllers.split(","):
            base, version = root / "memory", 1
        else:
            continue
        for folder in dict.fromkeys((base / path.lstrip("/"), base)):
            if folder.is_dir():
                folders.append((folder, version))
    return folders


def _meminfo_available(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):  # missing, or "max" (no limit)
        return None


def _stat(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        return 0
    return 0
