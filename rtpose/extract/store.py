"""Where outputs go: a local folder, or any fsspec URL that every worker can write.

An output (a file, or a folder of files) is first written whole under a temporary name
(``stage``), then put in place (``publish``), so that no output under its final name is ever
half-written:

- ``LocalStore``: the temporary name is beside the final one, hidden and marked with the
  writer's process id (``rtpose.files.temporary_name``: ``.tmp-PID-XXXXXXXX.<name>``), and
  ``publish`` is a rename (``os.replace``; a folder that is already there is moved aside
  first, and only when it holds nothing but files of the same output: a folder of anything
  else is never deleted). Files are flushed to disk (``fsync``) before the rename.
  Temporaries of an output left by a killed run are removed by ``clean_stale`` before that
  output is written again (only that output's: on a folder shared between machines, other
  inputs' temporaries may be another machine's work in progress).
- ``FsspecStore`` (``s3://``, ``gs://``, ``memory://``, …; needs fsspec and the protocol's
  package): outputs are written to a local temporary folder and uploaded whole by
  ``publish``. An object store shows an object only once its upload completes; a folder's
  files appear one by one, and the run's manifest alone says which outputs are complete.
  ``memory://`` lives in one process: workers cannot share it (``shared`` is False).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlparse

from rtpose.errors import RtposeError
from rtpose.files import temporary_name

FSSPEC_MISSING = ("an output URL needs fsspec (and the package of its protocol, e.g. s3fs): "
                  "pip install 'rtpose[ray]'")


class Store(Protocol):
    """Outputs by relative POSIX name (``a/x.jsonl``, ``a/x`` for a folder)."""

    location: str
    local: bool
    shared: bool

    def exists(self, name: str) -> bool: ...

    def stage(self, name: str, folder: bool = False) -> Path: ...

    def publish(self, staged: Path, name: str) -> None: ...

    def discard(self, staged: Path) -> None: ...

    def clean_stale(self, name: str) -> None: ...

    def upload(self, local: Path, name: str) -> None: ...


UNSHARED_PROTOCOLS = ("memory",)  # an fsspec file system that lives in one process


def open_store(location: str | Path) -> Store:
    """A ``LocalStore`` for a path or a ``file://`` URL, else an ``FsspecStore``."""
    if is_url(location):
        return FsspecStore(str(location))
    return LocalStore(local_path(location))


def is_url(location: str | Path) -> bool:
    """Whether ``location`` is a URL for ``FsspecStore`` (not a path nor ``file://``)."""
    return "://" in str(location) and not str(location).startswith("file://")


def local_path(location: str | Path) -> Path:
    """A path, or a ``file://`` URL's path (``file:///abs/x`` → ``/abs/x``; percent-escapes
    decoded); ``RtposeError`` for a ``file://`` URL naming another host."""
    text = str(location)
    if not text.startswith("file://"):
        return Path(text)
    url = urlparse(text)
    if url.netloc not in ("", "localhost"):
        raise RtposeError(f"{text}: a file URL must name this machine (file:///path)")
    return Path(unquote(url.path))


class LocalStore:
    """Outputs under a local (or shared, e.g. NFS) folder ``root``."""

    local = True
    shared = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(root)

    def path(self, name: str) -> Path:
        return self.root / PurePosixPath(name)

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def stage(self, name: str, folder: bool = False) -> Path:
        final = self.path(name)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RtposeError(f"cannot write {final}: {e.strerror or e}") from e
        staged = temporary_name(final)
        if folder:
            staged.mkdir()
        return staged

    def publish(self, staged: Path, name: str) -> None:
        """Put ``staged`` in place as ``name``; ``RtposeError`` (nothing replaced) when
        something else is in the way: a folder where a file goes, a file where a folder
        goes, or a folder holding files that are not this output's."""
        final = self.path(name)
        if staged.is_dir():
            _check_replaceable(final, PurePosixPath(name).name)
            for file in staged.iterdir():
                _fsync(file)
            aside = temporary_name(final)
            if final.exists():
                os.replace(final, aside)
            os.replace(staged, final)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            if final.is_dir() and not final.is_symlink():
                raise RtposeError(f"cannot write {final}: a folder is in the way")
            _fsync(staged)
            os.replace(staged, final)
        _fsync(final.parent)

    def discard(self, staged: Path) -> None:
        _remove(staged)

    def clean_stale(self, name: str) -> None:
        final = self.path(name)
        marked = re.compile(rf"\.tmp-\d+-[0-9a-f]{{8}}\.{re.escape(final.name)}")
        for stale in glob.glob(glob.escape(str(final.parent)) + "/.tmp-*"):
            if marked.fullmatch(Path(stale).name):
                _remove(Path(stale))

    def upload(self, local: Path, name: str) -> None:
        if local.resolve() != self.path(name).resolve():
            staged = self.stage(name)
            shutil.copyfile(local, staged)
            self.publish(staged, name)


class FsspecStore:
    """Outputs under an fsspec URL; written locally, then uploaded whole."""

    local = False

    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise RtposeError(FSSPEC_MISSING) from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as e:
            raise RtposeError(f"cannot write to {url}: {e}") from None
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (
            self.fs.protocol,)
        self.shared = not set(protocols) & set(UNSHARED_PROTOCOLS)
        self.location = url.rstrip("/")
        self._scratch = Path(tempfile.mkdtemp(prefix="rtpose-extract-"))

    def _remote(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def exists(self, name: str) -> bool:
        return self.fs.exists(self._remote(name))

    def stage(self, name: str, folder: bool = False) -> Path:
        staged = self._scratch / uuid.uuid4().hex / PurePosixPath(name).name
        staged.parent.mkdir(parents=True)
        if folder:
            staged.mkdir()
        return staged

    def publish(self, staged: Path, name: str) -> None:
        remote = self._remote(name)
        if staged.is_dir():
            if self.fs.exists(remote):
                self.fs.rm(remote, recursive=True)
            self.fs.makedirs(remote, exist_ok=True)
            for file in sorted(staged.iterdir()):
                self.fs.put_file(str(file), f"{remote}/{file.name}")
        else:
            self.fs.makedirs(remote.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(staged), remote)
        self.discard(staged)

    def discard(self, staged: Path) -> None:
        _remove(staged.parent)

    def clean_stale(self, name: str) -> None:
        """Nothing: temporaries are local to the worker that wrote them."""

    def upload(self, local: Path, name: str) -> None:
        self.fs.put_file(str(local), self._remote(name))


def _check_replaceable(final: Path, stem: str) -> None:
    """``final`` may be replaced by a video's OpenPose folder: absent, or a folder of nothing
    but files of the same output (an earlier or a killed run's ``<stem>_<12 digits>_keypoints
    .json`` frame files, and their temporaries), never anything else."""
    if not final.exists() and not final.is_symlink():
        return
    if final.is_symlink() or not final.is_dir():
        raise RtposeError(f"cannot write {final}: a file is in the way")
    ours = re.compile(rf"(\.tmp-\d+-[0-9a-f]{{8}}\.)?{re.escape(stem)}_\d{{12}}"
                      r"_keypoints\.json")
    try:
        foreign = sorted(entry.name for entry in final.iterdir()
                         if not ours.fullmatch(entry.name))
    except OSError as e:
        raise RtposeError(f"cannot write {final}: {e.strerror or e}") from e
    if foreign:
        raise RtposeError(f"cannot write {final}: the folder holds files this extraction did "
                          f"not write ({foreign[0]}{', ...' if len(foreign) > 1 else ''}); "
                          "move them or choose another output folder")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
