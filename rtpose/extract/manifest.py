"""The run's record: a JSON-lines file, appended and flushed to disk line by line.

The first line states the settings the outputs depend on; each later line records one input::

    {"settings": {"format": "jsonl", "every": 1, ..., "model": "model/keras/x.weights.h5"}}
    {"input": "a/x.mp4", "status": "done", "frames": 80, "people": 212, "seconds": 6.1,
     "output": "a/x.jsonl"}
    {"input": "b/y.mp4", "status": "failed", "reason": "cannot read video ...: ..."}

An input's last line wins (a failed input retried and done has both). Each line is written
with one ``write`` and ``fsync``-ed before the run goes on, so a run killed at any moment
(``kill -9``, a power cut) loses at most a line being written; such a torn last line is
ignored and cut off when the manifest is opened again. Only the engine's driver writes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rtpose.errors import RtposeError

MANIFEST_NAME = "manifest.jsonl"


class Manifest:
    """Open (or create) the manifest at ``path`` for runs with ``settings``.

    Raises ``RtposeError`` when the file holds a run with other settings, or is not a
    manifest.
    """

    def __init__(self, path: str | Path, settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existing = self.path.read_bytes() if self.path.exists() else b""
        except OSError as e:
            raise RtposeError(f"cannot open manifest {self.path}: {e.strerror or e}") from e
        complete = existing[:existing.rfind(b"\n") + 1]  # a torn last line is dropped
        lines = _parse(complete, self.path)
        settings = json.loads(json.dumps(settings))  # as read back: tuples as lists
        if lines:
            _check_settings(self.path, lines[0], settings)
            for line in lines[1:]:
                self.records[line["input"]] = line
        try:
            self._file = open(self.path, "r+b" if existing else "wb")
            if len(complete) != len(existing):
                self._file.truncate(len(complete))
            self._file.seek(len(complete))
            if not lines:
                self._append({"settings": settings})
                _fsync_folder(self.path.parent)
        except OSError as e:
            raise RtposeError(f"cannot write manifest {self.path}: {e.strerror or e}") from e

    def status(self, name: str) -> str | None:
        """``done``, ``failed`` or None (never recorded)."""
        record = self.records.get(name)
        return None if record is None else record["status"]

    def record(self, name: str, **fields: Any) -> None:
        """Append ``{"input": name, **fields}`` (``fields`` has ``status``) and flush it to
        disk."""
        line = {"input": name, **{k: v for k, v in fields.items() if v not in (None, (), [])}}
        self._append(line)
        self.records[name] = line

    def _append(self, line: dict[str, Any]) -> None:
        self._file.write(json.dumps(line).encode("utf-8") + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """Every input's last record in a manifest file, by input name."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RtposeError(f"cannot read manifest {path}: {e.strerror or e}") from None
    lines = _parse(data[:data.rfind(b"\n") + 1], Path(path))
    return {line["input"]: line for line in lines[1:]}


def _parse(data: bytes, path: Path) -> list[dict[str, Any]]:
    """The settings line then the records; ``RtposeError`` if this is not a manifest."""
    try:
        lines = [json.loads(line) for line in data.split(b"\n") if line.strip()]
        if lines and ("settings" not in lines[0]
                      or not all(isinstance(line["input"], str) for line in lines[1:])):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise RtposeError(f"{path} is not an extraction manifest") from None
    return lines


def _check_settings(path: Path, first: dict[str, Any], settings: dict[str, Any]) -> None:
    before = first["settings"]
    changed = [f"{key} {settings.get(key)!r} (was {before.get(key)!r})"
               for key in sorted(set(before) | set(settings))
               if before.get(key) != settings.get(key)]
    if changed:
        raise RtposeError(f"{path} records a run with other settings: {', '.join(changed)}; "
                          "use another output folder")


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
