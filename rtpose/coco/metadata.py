"""One training sample of the original HDF5 dataset: image, masks and the metadata channel.

A sample is a uint8 array ``(C, H, W)``: channels 0-2 the image (BGR), 3 the metadata, 4
``mask_miss`` and, for COCO, 5 ``mask_all`` (both 0 or 255; ``mask_miss`` is 255 where the loss
counts). The metadata channel is the byte layout of the original writer (CMU's Caffe
``cpm_data_transformer`` reads the same), all numbers little-endian float32 from byte 0 of a row:

====  =====================================================================================
row   content
====  =====================================================================================
0     dataset name, ASCII ("COCO"), zero-padded
1     img_height, img_width
2     byte 0 is_validation, byte 1 num_other_people, byte 2 people_index (uint8 each);
      bytes 3-6 annolist_index, 7-10 write_count, 11-14 total_write_count (float32)
3     objpos x, y of the main person
4     scale_provided of the main person (bbox height / 368)
5-7   joints of the main person, transposed: all 17 x, all 17 y, all 17 visibilities
then, only when n = num_other_people > 0:
n     objpos x, y of each other person (one row each)
1     scale_provided of the n other people
3n    joints of each other person (x row, y row, visibility row)
====  =====================================================================================

Joints are the 17 COCO keypoints in COCO order; visibility is coded as the original did:
1 = labelled and visible (COCO v=2), 0 = labelled but occluded (v=1), 2 = not labelled (v=0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtpose.errors import RtposeError

NUM_COCO_JOINTS = 17
_F32 = np.dtype("<f4")
_HEADER_ROWS = 8  # name, size, counters, objpos, scale, 3 joint rows


@dataclass(frozen=True, eq=False)
class SampleMeta:
    """Metadata of one sample: the main person, the other people, and bookkeeping counters.

    Positions are in original-image pixels. ``joints`` is ``(17, 3)`` float32 (x, y, visibility
    in the original's coding, see the module docstring); ``objpos_other`` ``(n, 2)``,
    ``scale_provided_other`` ``(n,)`` and ``joints_other`` ``(n, 17, 3)`` with
    ``n == num_other_people``.
    """

    dataset: str
    img_height: int
    img_width: int
    is_validation: bool
    num_other_people: int
    people_index: int
    annolist_index: int
    write_count: int
    total_write_count: int
    objpos: np.ndarray
    scale_provided: float
    joints: np.ndarray
    objpos_other: np.ndarray
    scale_provided_other: np.ndarray
    joints_other: np.ndarray

    def __post_init__(self) -> None:
        n = self.num_other_people
        arrays = {
            "objpos": (self.objpos, (2,)),
            "joints": (self.joints, (NUM_COCO_JOINTS, 3)),
            "objpos_other": (self.objpos_other, (n, 2)),
            "scale_provided_other": (self.scale_provided_other, (n,)),
            "joints_other": (self.joints_other, (n, NUM_COCO_JOINTS, 3)),
        }
        for name, (value, shape) in arrays.items():
            array = np.asarray(value, dtype=np.float32).reshape(-1)
            if array.size != int(np.prod(shape)):
                raise RtposeError(
                    f"SampleMeta.{name} has {array.size} values, expected shape {shape} "
                    f"(num_other_people={n})"
                )
            object.__setattr__(self, name, array.reshape(shape))
        if not 0 <= n <= 255 or not 0 <= self.people_index <= 255:
            raise RtposeError("num_other_people and people_index must fit in one byte (0..255)")
        if not self.dataset.isascii() or "\0" in self.dataset:
            raise RtposeError(f"dataset name {self.dataset!r} must be ASCII without NUL bytes")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SampleMeta):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, name), getattr(other, name))
            for name in self.__dataclass_fields__
        )

    @property
    def packed_shape(self) -> tuple[int, int]:
        """Rows and minimum width (bytes) that the packed metadata occupies."""
        n = self.num_other_people
        rows = _HEADER_ROWS + (4 * n + 1 if n else 0)
        width = max(len(self.dataset), 15, 4 * NUM_COCO_JOINTS, 4 * n)
        return rows, width


@dataclass(frozen=True, eq=False)
class Sample:
    """A decoded sample: ``image`` (H, W, 3) BGR uint8, ``mask_miss`` (H, W) uint8 (255 = the
    loss counts here), ``mask_all`` (H, W) uint8 (255 on every person and crowd; None for
    datasets written without it) and its ``meta``."""

    image: np.ndarray
    mask_miss: np.ndarray
    mask_all: np.ndarray | None
    meta: SampleMeta


def _float_row(values: np.ndarray | list[float], width: int) -> np.ndarray:
    row = np.zeros(width, np.uint8)
    raw = np.frombuffer(np.asarray(values, dtype=_F32).tobytes(), np.uint8)
    row[: raw.size] = raw
    return row


def pack_meta(meta: SampleMeta, width: int) -> np.ndarray:
    """The metadata rows of ``meta``: uint8 ``(rows, width)``, zero where nothing is written."""
    min_width = meta.packed_shape[1]
    if width < min_width:
        raise RtposeError(f"metadata needs rows at least {min_width} bytes wide, got {width}")
    name = np.zeros(width, np.uint8)
    name[: len(meta.dataset)] = np.frombuffer(meta.dataset.encode("ascii"), np.uint8)
    counters = np.zeros(width, np.uint8)
    counters[:3] = (int(meta.is_validation), meta.num_other_people, meta.people_index)
    counts = [meta.annolist_index, meta.write_count, meta.total_write_count]
    counters[3:15] = np.asarray(counts, dtype=_F32).view(np.uint8)
    lines = [
        name,
        _float_row([meta.img_height, meta.img_width], width),
        counters,
        _float_row(meta.objpos, width),
        _float_row([meta.scale_provided], width),
        *(_float_row(column, width) for column in meta.joints.T),
    ]
    if meta.num_other_people:
        lines += [_float_row(xy, width) for xy in meta.objpos_other]
        lines.append(_float_row(meta.scale_provided_other, width))
        lines += [_float_row(column, width) for person in meta.joints_other for column in person.T]
    return np.stack(lines)


def _floats(row: np.ndarray, start: int, count: int) -> np.ndarray:
    return np.frombuffer(row[start : start + 4 * count].tobytes(), _F32).astype(np.float32)


def _joints(rows: np.ndarray) -> np.ndarray:
    """(17, 3) joints from their three transposed rows (x, y, visibility)."""
    return np.stack([_floats(row, 0, NUM_COCO_JOINTS) for row in rows], axis=1)


def unpack_meta(channel: np.ndarray) -> SampleMeta:
    """Read the metadata channel (uint8 ``(H, W)``) written by :func:`pack_meta`."""
    channel = np.asarray(channel)
    if channel.dtype != np.uint8 or channel.ndim != 2:
        raise RtposeError(
            f"metadata channel must be uint8 (H, W), got {channel.dtype} {channel.shape}"
        )
    height, width = channel.shape
    if height < _HEADER_ROWS or width < 4 * NUM_COCO_JOINTS:
        raise RtposeError(f"metadata channel {channel.shape} is too small for the header")
    name_bytes = channel[0].tobytes().split(b"\0", 1)[0]
    try:
        dataset = name_bytes.decode("ascii")
    except UnicodeDecodeError as err:
        raise RtposeError(f"metadata dataset name {name_bytes[:16]!r} is not ASCII") from err
    img_height, img_width = _floats(channel[1], 0, 2)
    annolist_index, write_count, total_write_count = _floats(channel[2], 3, 3)
    n = int(channel[2, 1])
    rows = _HEADER_ROWS + (4 * n + 1 if n else 0)
    if height < rows or width < 4 * n:
        raise RtposeError(
            f"metadata says {n} other people but the channel {channel.shape} cannot hold them"
        )
    others = channel[_HEADER_ROWS:rows]
    return SampleMeta(
        dataset=dataset,
        img_height=int(img_height),
        img_width=int(img_width),
        is_validation=bool(channel[2, 0]),
        num_other_people=n,
        people_index=int(channel[2, 2]),
        annolist_index=int(annolist_index),
        write_count=int(write_count),
        total_write_count=int(total_write_count),
        objpos=_floats(channel[3], 0, 2),
        scale_provided=float(_floats(channel[4], 0, 1)[0]),
        joints=_joints(channel[5:8]),
        objpos_other=np.array([_floats(row, 0, 2) for row in others[:n]]).reshape(n, 2),
        scale_provided_other=_floats(others[n], 0, n) if n else np.zeros(0, np.float32),
        joints_other=np.array(
            [_joints(others[n + 1 + 3 * p : n + 4 + 3 * p]) for p in range(n)]
        ).reshape(n, NUM_COCO_JOINTS, 3),
    )


def decode_sample(array: np.ndarray) -> Sample:
    """Split a stored ``(C, H, W)`` uint8 sample (C = 6 for COCO, 5 without ``mask_all``)."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[0] not in (5, 6):
        raise RtposeError(
            f"a sample must be uint8 (6, H, W) or (5, H, W), got {array.dtype} {array.shape}"
        )
    return Sample(
        image=np.ascontiguousarray(array[:3].transpose(1, 2, 0)),
        mask_miss=np.ascontiguousarray(array[4]),
        mask_all=np.ascontiguousarray(array[5]) if array.shape[0] == 6 else None,
        meta=unpack_meta(array[3]),
    )


def encode_sample(sample: Sample) -> np.ndarray:
    """The stored ``(C, H, W)`` uint8 array of ``sample``; the metadata fills the top rows."""
    image = np.asarray(sample.image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise RtposeError(f"sample image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    masks = [sample.mask_miss] + ([] if sample.mask_all is None else [sample.mask_all])
    for mask in masks:
        if mask.shape != (height, width) or mask.dtype != np.uint8:
            raise RtposeError(
                f"masks must be uint8 {(height, width)}, got {mask.dtype} {mask.shape}"
            )
    rows, _ = sample.meta.packed_shape
    if height < rows:
        raise RtposeError(f"image height {height} cannot hold {rows} metadata rows")
    meta = np.zeros((height, width), np.uint8)
    meta[:rows] = pack_meta(sample.meta, width)
    return np.concatenate([image.transpose(2, 0, 1), meta[None], np.stack(masks)])
