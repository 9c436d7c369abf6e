"""The run's record: a JSON-lines file, appended and flushed to disk line by line.

The first line states the settings the outputs depend on; each later line records one input::

    {"settings": {"format": "jsonl", "every": 1, ..., "model": "model/keras/x.weights.h5"}}
    {"input": "a/x.mp4", "status": "done", "frames": 80, "people": 212, "seconds": 6.1,
     "output": "a/x.jsonl"}
    {"input": "b/y.mp4", "status": "failed", "reason": "cannot read video ...: ..."}

The settings line is written with the first record, so that a run that fails before any
input is done or failed (a wrong ``--model``) leaves no settings behind. An input's last line
wins (a failed input retried and done has both). Each line is written
with one ``write`` and ``fsync``-ed before the run goes on, so a run killed at any moment
(``kill -9``, a power cut) loses at most a line being written; such a torn last line is
ignored and cut off when the manifest is opened again. Only the engine's driver writes it.
Any other damage (a line that is not JSON, a record without its ``status`` or ``output``) is
an ``RtposeError`` naming the file and the line; ``read_manifest(..., strict=False)`` skips
such lines with a warning instead.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from rtpose.errors import RtposeError

MANIFEST_NAME = "manifest.jsonl"
STATUSES = ("done", "failed")


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
        first, self.records = _parse(complete, self.path)
        self.settings = json.loads(json.dumps(settings))  # as read back: tuples as lists
        self._unwritten = first is None  # the settings line, written with the first record
        if first is not None:
            _check_settings(self.path, first, self.settings)
        try:
            self._file = open(self.path, "r+b" if existing else "wb")
            if len(complete) != len(existing):
                self._file.truncate(len(complete))
            self._file.seek(len(complete))
        except OSError as e:
            raise RtposeError(f"cannot write manifest {self.path}: {e.strerror or e}") from e

    def outputs(self) -> set[str]:
        """The outputs recorded of done inputs (their ``output`` and ``rendered``)."""
        return {record[key] for record in self.records.values() if record["status"] == "done"
                for key in ("output", "rendered") if isinstance(record.get(key), str)}

    def status(self, name: str) -> str | None:
        """``done``, ``failed`` or None (never recorded)."""
        record = self.records.get(name)
        return None if record is None else record["status"]

    def record(self, name: str, **fields: Any) -> None:
        """Append ``{"input": name, **fields}`` (``fields`` has ``status``) and flush it to
        disk."""
        line = {"input": name, **{k: v for k, v in fields.items() if v not in (None, (), [])}}
        if self._unwritten:
            self._append({"settings": self.settings})
            _fsync_folder(self.path.parent)
            self._unwritten = False
        self._append(line)
        self.records[name] = line

    def _append(self, line: dict[str, Any]) -> None:
        try:
            self._file.write(json.dumps(line).encode("utf-8") + b"\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            raise RtposeError(f"cannot write manifest {self.path}: {e.strerror or e}") from e

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_manifest(path: str | Path, strict: bool = True) -> dict[str, dict[str, Any]]:
    """Every input's last record in a manifest file, by input name. A damaged line is an
    ``RtposeError``, or with ``strict=False`` skipped with a warning."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise RtposeError(f"cannot read manifest {path}: {e.strerror or e}") from None
    return _parse(data[:data.rfind(b"\n") + 1], Path(path), strict)[1]


def _parse(data: bytes, path: Path,
           strict: bool = True) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The settings (None for an empty file) and each input's last record."""
    first, records = None, {}
    for number, text in enumerate(data.split(b"\n"), 1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            line = None
        if first is None:
            if isinstance(line, dict) and isinstance(line.get("settings"), dict):
                first = line["settings"]
                continue
            if strict:
                raise RtposeError(f"{path} is not an extraction manifest (line {number} is not "
                                  "its settings)")
            warnings.warn(f"{path}: line {number} is not the settings line", stacklevel=3)
            first = {}
        problem = _record_problem(line)
        if problem is None:
            records[line["input"]] = line
        elif strict:
            raise RtposeError(f"{path} is damaged: line {number} {problem}; mend or delete "
                              "that line")
        else:
            warnings.warn(f"{path}: line {number} skipped: it {problem}", stacklevel=3)
    return first, records


def _record_problem(line: Any) -> str | None:
    """What is wrong with a manifest record, or None."""
    if not isinstance(line, dict):
        return "is not a JSON object"
    if not isinstance(line.get("input"), str):
        return "has no input name"
    if line.get("status") not in STATUSES:
        return f"has no status ({' or '.join(STATUSES)})"
    if line["status"] == "done" and not isinstance(line.get("output"), str):
        return "records a done input without its output"
    return None


def _check_settings(path: Path, before: dict[str, Any], settings: dict[str, Any]) -> None:
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
