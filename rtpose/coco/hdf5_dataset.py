"""The original training dataset in HDF5: writing it from COCO, and reading it back.

File layout (what the original ``generate_hdf5.py`` wrote and the C++ dataset server reads): one
group ``datum`` holding datasets ``0000000``, ``0000001``, ... (dense from 0, ``%07d``), each a
contiguous uint8 array ``(6, H, W)`` encoded by :func:`rtpose.coco.metadata.encode_sample`; no
attributes anywhere.

The first ``val_size`` samples (in split order, then image order) go to the validation file with
``is_validation`` set, the rest to the training file. ``write_count`` is the sample's key number
in its file and ``total_write_count`` the number of samples in that file. (The original wrote the
validation count into the training file's ``total_write_count`` and vice versa; only the C++
server's unused "table" augmentation reads it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from rtpose.coco.masks import read_masks
from rtpose.coco.metadata import Sample, SampleMeta, decode_sample, encode_sample
from rtpose.coco.selection import ImageRecord
from rtpose.errors import RtposeError
from rtpose.files import atomic_path, remove_stale_temporaries

GROUP = "datum"
DEFAULT_VAL_SIZE = 2645  # the original's validation set size
DATASET_NAME = "COCO"


def key(index: int) -> str:
    """The dataset name of sample ``index`` (``%07d``)."""
    return f"{index:07d}"


def load_sample(record: ImageRecord, meta: SampleMeta) -> Sample:
    """Read the image and masks of ``record`` into a :class:`Sample` with ``meta``.

    An image too small for its metadata rows (at least 68 bytes wide) is padded right and down
    (image 128, ``mask_miss`` 255, ``mask_all`` 0) as the original meant to.
    """
    image = cv2.imread(str(record.image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise RtposeError(f"image {record.image_path} is missing or unreadable")
    mask_miss, mask_all = read_masks(record.masks_dir, record.image_id)
    if not image.shape[:2] == mask_miss.shape == mask_all.shape:
        raise RtposeError(
            f"image {record.image_path} is {image.shape[:2]} but its masks are {mask_miss.shape}; "
            f"regenerate them with generate_masks.py --force"
        )
    rows, min_width = meta.packed_shape
    pad_down, pad_right = max(rows - image.shape[0], 0), max(min_width - image.shape[1], 0)
    if pad_down or pad_right:
        image, mask_miss, mask_all = (
            cv2.copyMakeBorder(a, 0, pad_down, 0, pad_right, cv2.BORDER_CONSTANT, value=v)
            for a, v in ((image, (128, 128, 128)), (mask_miss, 255), (mask_all, 0))
        )
    return Sample(image=image, mask_miss=mask_miss, mask_all=mask_all, meta=meta)


def write_hdf5(
    records: Sequence[ImageRecord],
    train_path: str | Path,
    val_path: str | Path,
    val_size: int = DEFAULT_VAL_SIZE,
    dataset: str = DATASET_NAME,
    progress: bool = True,
) -> tuple[int, int]:
    """Write one sample per record: the first ``val_size`` to ``val_path``, the rest to
    ``train_path``. Returns ``(train samples, validation samples)``.

    Each file is written under a temporary name and renamed when complete; a failure or an
    interruption removes the temporary (and the next run those of killed runs).
    """
    if val_size < 0:
        raise RtposeError(f"val_size must be >= 0, got {val_size}")
    n_val = min(val_size, len(records))
    splits = ((Path(val_path), records[:n_val], True), (Path(train_path), records[n_val:], False))
    for path, part, is_validation in splits:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        with atomic_path(path) as partial, h5py.File(partial, "w") as h5:
            group = h5.create_group(GROUP)
            name = "validation" if is_validation else "training"
            for index, record in enumerate(
                tqdm(part, desc=f"{name} -> {path.name}", unit="sample", disable=not progress)
            ):
                meta = record.meta(dataset, is_validation, index, len(part))
                group.create_dataset(key(index), data=encode_sample(load_sample(record, meta)))
    return len(records) - n_val, n_val


class HDF5Dataset(Sequence[Sample]):
    """Read-only access to a dataset file written by :func:`write_hdf5` (or the original).

    ``dataset[i]`` decodes sample ``i`` into a :class:`~rtpose.coco.metadata.Sample`; use it as a
    context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RtposeError(f"dataset file {self.path} not found; run generate_hdf5.py first")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as err:
            raise RtposeError(f"{self.path} is not a readable HDF5 file: {err}") from err
        group = self._file.get(GROUP)
        if not isinstance(group, h5py.Group):
            self._file.close()
            raise RtposeError(f"{self.path} has no '{GROUP}' group; not an rtpose/CMU dataset")
        self._keys = sorted(group.keys())
        bad = [k for i, k in enumerate(self._keys) if k != key(i)]
        if bad:
            self._file.close()
            raise RtposeError(
                f"{self.path}: sample keys must be dense {key(0)}..{key(len(self._keys) - 1)}, "
                f"found {bad[0]!r}"
            )
        self._group = group

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        array = self.raw(index)
        try:
            return decode_sample(array)
        except RtposeError as err:
            raise RtposeError(f"{self.path}: sample {index}: {err}") from err

    def raw(self, index: int) -> np.ndarray:
        """The stored uint8 ``(C, H, W)`` array of sample ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        name = self._keys[index]
        item = self._group[name]
        if not isinstance(item, h5py.Dataset) or item.dtype != np.uint8 or item.ndim != 3:
            raise RtposeError(f"{self.path}: {GROUP}/{name} is not a uint8 (C, H, W) array")
        return item[()]

    def keys(self) -> list[str]:
        """The sample names, ``0000000`` ... in order."""
        return list(self._keys)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> HDF5Dataset:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
