"""Atomic writes: whole files or nothing, with the permissions of a plain open()."""

from __future__ import annotations

import os
import stat

import pytest

from alseg.atomic import atomic_path, write_text_atomic


def test_written_file_has_the_mode_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_text_atomic(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "atomic.txt").st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_failed_block_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("before")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
