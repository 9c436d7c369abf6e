"""The shared writer (``rtpose.files``): an output is complete or absent, and what a killed
process left is swept (issue 15)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import dead_pid, temporaries

from rtpose.files import atomic_path, remove_stale_temporaries


def test_atomic_path_keeps_the_old_file_on_any_exception(tmp_path: Path):
    out = tmp_path / "a.txt"
    out.write_text("old")
    for error in (KeyboardInterrupt, OSError):
        with pytest.raises(error), atomic_path(out) as tmp:
            tmp.write_text("half")
            raise error
        assert out.read_text() == "old" and temporaries(tmp_path) == []
    with atomic_path(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".a.txt")
        tmp.write_text("new")
    assert out.read_text() == "new" and temporaries(tmp_path) == []


def test_only_temporaries_of_dead_processes_are_removed(tmp_path: Path):
    dead = tmp_path / f".tmp-{dead_pid()}-0123abcd.last.keras"
    mine = tmp_path / f".tmp-{os.getpid()}-0123abcd.last.keras"
    folder = tmp_path / f".tmp-{dead_pid()}-89abcdef.e.onnx"
    other = tmp_path / ".tmp-notes.txt"
    for path in (dead, mine, other):
        path.write_text("x")
    folder.mkdir()
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted([dead, folder])
    assert mine.exists() and other.exists() and not dead.exists() and not folder.exists()
