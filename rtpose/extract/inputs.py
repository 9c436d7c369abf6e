"""A dataset's inputs: files, folders (recursive), globs and list files, as ``Item``s.

Each input gets a relative name, mirrored under the output folder:

- a file found in a folder: its path relative to that folder (``clips/a/x.mp4`` found in
  ``clips`` → ``a/x.mp4``);
- a file found by a glob: its path relative to the glob's folder part (``data/*/x.mp4`` →
  ``<dir>/x.mp4``);
- a file named on the command line or in a list file: its path relative to the current folder
  (or to the list file's folder) when it lies below it, else its name.

List files hold one path per line; blank lines and lines starting with ``#`` are skipped;
relative paths are relative to the list file's folder. Folders are walked in name order,
skipping hidden files and folders and the output folder; their files of other types are
skipped and counted. A glob's matches in the output folder are skipped too, and so are the
outputs of earlier runs (``outputs``: those the manifest records, and the manifest), wherever
they are found: outputs never become inputs. A folder that cannot be read is an error, never
skipped in silence. A file named directly is always an input, whatever its type (one of an
unknown type, or that is not a regular file, then fails, recorded like any bad input).
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rtpose.errors import RtposeError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp", ".ts"})
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Item:
    """One input: ``path`` (absolute, as a string), ``name`` (its relative name, POSIX
    form, mirrored under the output folder) and ``kind``: ``"image"``, ``"video"`` or
    ``"unknown"``."""

    path: str
    name: str
    kind: str

    @property
    def stem(self) -> str:
        """``name`` without its extension: where its outputs go (``a/x.mp4`` → ``a/x``)."""
        return str(PurePosixPath(self.name).with_suffix(""))


@dataclass(frozen=True)
class Inputs:
    """The items, sorted by name, and how many files of other types the folders held."""

    items: tuple[Item, ...]
    skipped: int


def kind_of(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return "unknown"


def collect_inputs(
    paths: Sequence[str] = (),
    lists: Sequence[str | Path] = (),
    exclude: str | Path | None = None,
    cwd: str | Path | None = None,
    outputs: Collection[str | Path] = (),
) -> Inputs:
    """The inputs named by ``paths`` (files, folders, globs) and the list files ``lists``.

    ``exclude``: a folder never walked into (the output folder); ``outputs``: files and
    folders that are never inputs (the manifest, the outputs it records). Raises
    ``RtposeError`` when a path names nothing, a list file or a folder cannot be read, nothing
    is found, or two inputs would write the same outputs (same name but for the extension).
    """
    cwd = Path(cwd or os.getcwd()).resolve()
    excluded = Path(exclude).resolve() if exclude is not None else None
    ours = {Path(os.path.abspath(path)) for path in outputs}
    found: dict[str, Item] = {}
    skipped = 0

    def add(path: Path, name: str) -> None:
        absolute = Path(os.path.abspath(path))
        if ours and (absolute in ours or not ours.isdisjoint(absolute.parents)):
            return
        item = Item(str(path), name, kind_of(path))
        previous = found.get(name)
        if previous is not None and previous.path != item.path:
            raise RtposeError(f"two inputs have the same name {name}: {previous.path} and "
                              f"{item.path}")
        found[name] = item

    for text in paths:
        path = (cwd / text).resolve() if not Path(text).is_absolute() else Path(text)
        if path.is_dir():
            files, others = _walk(path, excluded)
            skipped += others
            for file in files:
                add(file, file.relative_to(path).as_posix())
        elif path.exists() and not path.is_dir():  # a file, or a FIFO or device that fails
            add(path, _relative_name(path, cwd))
        elif GLOB_CHARACTERS & set(text):
            base = _glob_base(text, cwd)
            matches = sorted(glob.glob(str(cwd / text), recursive=True))
            if not matches:
                raise RtposeError(f"no file matches {text}")
            for match in map(Path, matches):
                if _inside(match.resolve(), excluded) and not _inside(base, excluded):
                    continue  # the output folder, or a file in it
                if match.is_dir():
                    files, others = _walk(match, excluded)
                    skipped += others
                else:
                    files = [match]
                for file in files:
                    add(file, _relative_name(file.resolve(), base))
        else:
            raise RtposeError(f"no such file or folder: {text}")
    for list_file in lists:
        for entry in _read_list(Path(list_file)):
            folder = Path(list_file).resolve().parent
            path = Path(entry) if Path(entry).is_absolute() else folder / entry
            path = Path(os.path.normpath(path))
            add(path, _relative_name(path, folder))
    if not found:
        raise RtposeError("no images or videos found in " + ", ".join([*paths, *map(str, lists)]))
    _check_outputs_differ(found.values())
    return Inputs(tuple(found[name] for name in sorted(found)), skipped)


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def _walk(folder: Path, excluded: Path | None) -> tuple[list[Path], int]:
    """The image and video files below ``folder`` in name order, and the number of others;
    ``RtposeError`` for a folder that cannot be read."""

    def unreadable(error: OSError) -> None:
        reason = (error.strerror or str(error)).lower()
        raise RtposeError(f"cannot read folder {error.filename}: {reason}; "
                          "make it readable, or move it out of the inputs")

    files, others = [], 0
    for root, dirs, names in os.walk(folder, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (excluded is None or Path(root, d).resolve() != excluded))
        for name in sorted(names):
            if name.startswith("."):
                continue
            if kind_of(name) == "unknown":
                others += 1
            else:
                files.append(Path(root, name))
    return files, others


def _relative_name(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` when below it, else its name."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _glob_base(pattern: str, cwd: Path) -> Path:
    """The folder part of a glob pattern before its first wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if GLOB_CHARACTERS & set(part):
            break
        fixed.append(part)
    return (cwd / Path(*fixed)).resolve() if fixed else cwd


def _read_list(path: Path) -> list[str]:
    try:
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            kind = "a folder" if path.is_dir() else "not a regular file (a FIFO or a device)"
            raise RtposeError(f"cannot read list file {path}: {kind}")
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RtposeError(f"cannot read list file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise RtposeError(f"cannot read list file {path}: not UTF-8 text") from None
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _check_outputs_differ(items: Iterable[Item]) -> None:
    """Two inputs whose names differ only by the extension would write the same outputs."""
    stems: dict[str, Item] = {}
    for item in items:
        other = stems.setdefault(item.stem, item)
        if other is not item:
            raise RtposeError(f"{other.name} and {item.name} would write the same outputs "
                              f"({item.stem}.*): rename one or run them separately")
