"""The memory a step may use (alseg.host_memory) and the SEEDS threads sized by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from alseg.host_memory import available_bytes
from alseg.superpixel_methods import SEEDS_BYTES_PER_PIXEL, seeds_threads

GB = 1 << 30


def fake_host(root: Path, cgroup_line: str, files: dict[str, str], meminfo_gb: int = 20) -> tuple[Path, Path]:
    """A /proc with ``meminfo_gb`` available and the given cgroup line, and a cgroup tree of ``files``."""
    proc, cgroup = root / "proc", root / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: {64 * GB // 1024} kB\nMemAvailable: {meminfo_gb * GB // 1024} kB\n")
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    for name, text in files.items():
        (cgroup / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / name).write_text(text)
    return proc, cgroup


def test_the_machine_s_available_memory_without_a_cgroup_limit(tmp_path) -> None:
    proc, cgroup = fake_host(tmp_path, "0::/", {"memory.max": "max\n", "memory.current": str(GB)})
    assert available_bytes(proc, cgroup) == 20 * GB


def test_a_cgroup_v2_limit_less_its_usage_counting_page_cache_as_free(tmp_path) -> None:
    job = "slurm/uid_1/job_7/step_0"
    proc, cgroup = fake_host(tmp_path, f"0::/{job}", {f"{job}/memory.max": str(8 * GB),
                                                      f"{job}/memory.current": str(3 * GB),
                                                      f"{job}/memory.stat": f"anon 1\ninactive_file {GB}\n"})
    assert available_bytes(proc, cgroup) == 6 * GB  # 8 - 3 + 1 of reclaimable cache
    proc, cgroup = fake_host(tmp_path / "tight", f"0::/{job}", {f"{job}/memory.max": str(8 * GB),
                                                                f"{job}/memory.current": str(9 * GB)})
    assert available_bytes(proc, cgroup) == 0


def test_a_cgroup_v1_limit_and_its_no_limit_value(tmp_path) -> None:
    proc, cgroup = fake_host(tmp_path, "4:memory:/job", {"memory/job/memory.limit_in_bytes": str(4 * GB),
                                                         "memory/job/memory.usage_in_bytes": str(GB),
                                                         "memory/memory.limit_in_bytes": str(2**63 - 4096),
                                                         "memory/memory.usage_in_bytes": str(GB)})
    assert available_bytes(proc, cgroup) == 3 * GB
    # inside a container the process's own folder is not mounted: the mount's root is read (no limit here)
    proc, cgroup = fake_host(tmp_path / "c", "4:memory:/elsewhere", {"memory/memory.limit_in_bytes": str(2**63),
                                                                     "memory/memory.usage_in_bytes": str(GB)})
    assert available_bytes(proc, cgroup) == 20 * GB


def test_unknown_where_nothing_can_be_read(tmp_path) -> None:
    assert available_bytes(tmp_path / "no_proc", tmp_path / "no_cgroup") is None


def test_seeds_threads_fit_the_memory() -> None:
    per_image = SEEDS_BYTES_PER_PIXEL * 1024 * 2048  # about 11 GB: Cityscapes at full size
    assert seeds_threads(8, 1024, 2048, None) == 8  # unknown: as asked
    assert seeds_threads(8, 1024, 2048, 3 * per_image + 1) == 3
    assert seeds_threads(2, 1024, 2048, 30 * per_image) == 2
    assert seeds_threads(8, 1024, 2048, per_image // 2) == 1  # never fewer than one


def test_the_superpixel_step_logs_fewer_threads_and_warns_when_one_does_not_fit(monkeypatch, capsys) -> None:
    from alseg import host_memory
    from alseg.units.superpixel.files import seeds_workers

    per_image = SEEDS_BYTES_PER_PIXEL * 512 * 1024
    monkeypatch.setattr(host_memory, "available_bytes", lambda: 2 * per_image)
    assert seeds_workers(8, 512, 1024) == 2
    assert "2 threads instead of 8" in capsys.readouterr().err
    monkeypatch.setattr(host_memory, "available_bytes", lambda: per_image // 2)
    assert seeds_workers(8, 512, 1024) == 1
    assert "may run out of memory" in capsys.readouterr().err
    monkeypatch.setattr(host_memory, "available_bytes", lambda: None)
    assert seeds_workers(4, 512, 1024) == 4
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="Linux only")
def test_this_machine_has_a_positive_amount() -> None:
    available = available_bytes()
    assert available is not None and 0 < available
