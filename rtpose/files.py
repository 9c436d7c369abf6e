"""Files that no interruption leaves half-written: atomic writes, folder locks, SIGTERM as Ctrl+C.

- :func:`atomic_path` gives a writer a temporary name beside the output (same folder, so the
  final ``os.replace`` is atomic) and renames it into place only when the writer returns; on
  any exception, Ctrl+C included, the temporary is removed and the previous output is intact.
- A process killed outright (``kill -9``, power loss) cannot clean up: its temporaries carry
  its process id (``.tmp-PID-XXXXXXXX.NAME``) and :func:`remove_stale_temporaries` deletes
  those of processes that no longer run.
- :class:`FolderLock` lets one process at a time write into a folder (``fcntl.flock``).
- :func:`sigterm_as_interrupt` makes SIGTERM (``kill``, ``timeout``, ``docker stop``) raise
  ``KeyboardInterrupt`` like Ctrl+C, so that both take the same clean-up path; scripts then exit
  with :data:`INTERRUPTED_EXIT` (130, the shell's code for Ctrl+C).
- :func:`interrupts_deferred` holds Ctrl+C and SIGTERM back until a block ends, so that what the
  block writes (one frame into several outputs) is written whole or not at all.
- :func:`sha256` checks that a file is the one expected (downloads, the original weights).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from rtpose.errors import RtposeError

INTERRUPTED_EXIT = 130
_TEMPORARY = re.compile(r"\.tmp-(\d+)-[0-9a-f]{8}\..+")


def temporary_name(path: str | Path) -> Path:
    """A fresh hidden name beside ``path`` that ends with ``path``'s own name (and so with its
    suffixes, which writers such as Keras, OpenCV and Matplotlib read the format from)."""
    path = Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}.{path.name}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name for ``path``; rename it over ``path`` when the block completes.

    The writer must create a file at the yielded name (a folder works too when ``path`` is not an
    existing folder). The file is flushed to disk before the rename. On an exception the
    temporary is removed and the exception propagates; ``path`` is untouched.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tmp.is_file():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file (read 1 MiB at a time)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries in ``folder`` left by processes that no longer run; return them.

    Only names made by :func:`temporary_name` are considered, and only on this machine's
    process table: a folder shared between machines should be cleaned by one of them at a time.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = []
    for entry in folder.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if match and int(match[1]) != os.getpid() and not _running(int(match[1])):
            _remove(entry)
            stale.append(entry)
    return stale


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (``fcntl.flock`` on ``folder/.lock``).

    ``with FolderLock(folder, "training", "another --weights-dir"):`` raises ``RtposeError`` at
    once when another process holds the lock, naming its process id and the way out. The kernel
    drops the lock when the holder exits, however it exits, so a killed run never leaves the
    folder locked.
    """

    NAME = ".lock"

    def __init__(self, folder: str | Path, user: str = "process",
                 elsewhere: str = "another folder") -> None:
        self.folder = Path(folder)
        self.user = user
        self.elsewhere = elsewhere
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        """Take the lock; ``RtposeError`` in one line when the folder is another's, is not a
        folder, or cannot be written (read-only, a full disk)."""
        try:
            if self.folder.exists() and not self.folder.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(self.folder))
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RtposeError(self._cannot_write(e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise RtposeError(f"{self.folder} is in use by another {self.user}{pid}; wait for it "
                              f"to finish or choose {self.elsewhere}") from None
        try:
            os.ftruncate(fd, 0)
            if os.pwrite(fd, f"{os.getpid()}\n".encode(), 0) == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as e:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise RtposeError(self._cannot_write(e)) from None
        self._fd = fd
        return self

    def _cannot_write(self, error: OSError) -> str:
        where = error.filename if error.errno == errno.ENOTDIR and error.filename else (
            self.folder)
        reason = (error.strerror or str(error)).lower()
        if error.errno in (errno.ENOTDIR, errno.EEXIST):
            reason = "a file is there, not a folder" if Path(where).exists() else (
                "a file is in its path, not a folder")
        return f"cannot write into {where} for the {self.user}: {reason}; choose {self.elsewhere}"

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt`` in the main thread (elsewhere, and
    outside the main thread, this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are held back: the block runs to its end, then each
    signal received meanwhile is raised again, for the handler in force before (in the main
    thread; elsewhere, where no handler runs, this does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(s, lambda signum, frame: received.append(signum)) for s in signals]
    try:
        yield
    finally:
        for s, handler in zip(signals, previous, strict=True):
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
    for signum in dict.fromkeys(received):
        signal.raise_signal(signum)
