"""Fast maps → people: the faithful algorithm's peaks and people computed straight from the
network's low-resolution outputs, without up-sampling any map to the image size.

The faithful path (``inference.upsample_and_average``, then ``grouping.find_peaks`` and
``grouping.group_peaks``) up-samples all 57 maps of every scale to the image size, averages them
and smooths the 18 part heatmaps at full resolution. All of that is linear and separable
(``rtpose.map_operators``): the smoothed heatmap of part p is ``sum_s A_y,s @ X_s[p] @ A_x,s.T
/ n`` and the averaged map ``sum_s M_y,s @ X_s[p] @ M_x,s.T / n``. So:

1. Peaks. A bound on the smoothed map over each ``BLOCK`` x ``BLOCK`` block of the image, from
   the largest weights of the block's rows and columns, says where it can exceed ``thre1``.
   Only those blocks, with a one-pixel ring for the 4-neighbour comparison, are computed
   exactly: rows first for the whole image at low horizontal resolution (``A_y @ X``, cheap),
   then each block's columns. A peak's score is the averaged (unsmoothed) map at that pixel.
2. Association. ``grouping.group_peaks`` reads the PAFs only at the rounded sample points of
   candidate limbs; ``LowResPafs`` computes the averaged PAF at exactly those pixels.

The results are the faithful path's up to float rounding (about 1e-7 of the maps' values).
The matrices are cached per image size and scale geometry, so video frames reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from rtpose.config import CMU_GROUPING, GroupingParams
from rtpose.map_operators import Banded, smooth_columns, upsampling_matrix
from rtpose.skeleton import NUM_PARTS, PAF_CHANNELS

BLOCK = 8  # side of the blocks in which peaks are looked for, in image pixels
# Margin on thre1 for the block bound, relative to the largest map value: the bound is exact
# arithmetic, the smoothed values carry float rounding.
BOUND_MARGIN = 1e-6


def _block_bands(smooth: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """A smoothing matrix A (n_full, n_low) by blocks of ``block`` rows, each with the row
    before and after it (zero outside the image, as the original's neighbours there):
    (start (nB,), weights (nB, block + 2, K)), block b's rows on the low-res columns start[b]
    .. start[b] + K - 1."""
    n_full, n_low = smooth.shape
    n_blocks = -(-n_full // block)
    rows = np.arange(n_blocks)[:, None] * block - 1 + np.arange(block + 2)
    inside = (rows >= 0) & (rows < n_full)
    ringed = np.where(inside[..., None], smooth[np.clip(rows, 0, n_full - 1)], 0.0)
    nonzero = (ringed != 0).any(axis=1)  # (nB, n_low)
    first = np.argmax(nonzero, axis=1)
    last = n_low - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    width = int((last - first).max()) + 1
    padded = np.pad(ringed, ((0, 0), (0, 0), (0, width)))
    weights = np.take_along_axis(padded, (first[:, None] + np.arange(width))[:, None], axis=2)
    return first.astype(np.intp), weights


def _block_bounds(smooth: np.ndarray, block: int) -> np.ndarray:
    """(2, nB, n_low): per block of ``block`` rows of A (n_full, n_low), each column's largest
    positive weight and largest negative weight (as a positive number)."""
    n_full, n_low = smooth.shape
    n_blocks = -(-n_full // block)
    blocks = np.zeros((n_blocks * block, n_low))
    blocks[:n_full] = smooth
    blocks = blocks.reshape(n_blocks, block, n_low)
    return np.stack([np.maximum(blocks, 0).max(axis=1), np.maximum(-blocks, 0).max(axis=1)])


@dataclass(frozen=True)
class _Scale:
    """Operators of one scale in the forms the decoder uses; ``n`` is the number of scales,
    whose 1/n of the mean is folded into the x weights."""

    upsample_y: np.ndarray  # M_y (H, h)
    banded_y: Banded  # M_y, banded
    banded_x: Banded  # M_x (W, w), banded
    smooth_y: np.ndarray  # A_y (H, h), float32
    bound_y: np.ndarray  # (2, nBR, h) see _block_bounds
    bound_x: np.ndarray  # (2, nBC, w)
    block_start_x: np.ndarray  # (nBC,) see _block_bands
    block_x: np.ndarray  # (nBC, B + 2, K) float32, / n
    block_step_x: np.ndarray  # (nBC, B + 1, K) float32 differences of neighbouring rows, / n

    @classmethod
    def build(cls, image_hw: tuple[int, int], low_hw: tuple[int, int], pad: tuple[int, int],
              stride: int, block: int, n: int) -> _Scale:
        (height, width), (h, w), (pad_down, pad_right) = image_hw, low_hw, pad
        up_y = upsampling_matrix(h, pad_down, height, stride)
        up_x = upsampling_matrix(w, pad_right, width, stride)
        smooth_y, smooth_x = smooth_columns(up_y), smooth_columns(up_x)
        start_x, block_x = _block_bands(smooth_x, block)
        block_x /= n
        return cls(
            upsample_y=up_y, banded_y=Banded.from_dense(up_y), banded_x=Banded.from_dense(up_x),
            smooth_y=smooth_y.astype(np.float32),
            bound_y=_block_bounds(smooth_y, block), bound_x=_block_bounds(smooth_x, block),
            block_start_x=start_x, block_x=block_x.astype(np.float32),
            block_step_x=np.diff(block_x, axis=1).astype(np.float32),
        )


class DecodeGeometry:
    """What the fast decoder precomputes for one image size and scale geometry.

    ``image_hw``: (H, W); ``low_shapes``: per scale the network output's (h, w); ``pads``: per
    scale the network input's (pad_down, pad_right); ``stride``: the output stride.
    """

    def __init__(self, image_hw: tuple[int, int], low_shapes: Sequence[tuple[int, int]],
                 pads: Sequence[tuple[int, int]], stride: int = 8, block: int = BLOCK) -> None:
        self.height, self.width = image_hw
        self.block = block
        self.n_scales = n = len(low_shapes)
        self.scales = [_Scale.build(image_hw, low_hw, pad, stride, block, n)
                       for low_hw, pad in zip(low_shapes, pads, strict=True)]
        self.blocks_y = -(-self.height // block)
        self.blocks_x = -(-self.width // block)

        # Up-sampling weights of each image column, all scales side by side along the low-res
        # axis, each scale followed by its band's width of zeros so a band never reads the
        # next scale: row-pass column ``up_columns[x, k]`` has weight ``up_weights[x, k]``.
        spans = [w + s.banded_x.width for (_, w), s in zip(low_shapes, self.scales, strict=True)]
        self.up_offsets = np.cumsum([0, *spans[:-1]])
        self.up_width = int(sum(spans))
        self.up_columns = np.concatenate([
            offset + s.banded_x.start[:, None] + np.arange(s.banded_x.width)
            for offset, s in zip(self.up_offsets, self.scales, strict=True)], axis=1)
        self.up_weights = np.concatenate([s.banded_x.weights / n for s in self.scales], axis=1)


@lru_cache(maxsize=8)
def decode_geometry(image_hw: tuple[int, int], low_shapes: tuple[tuple[int, int], ...],
                    pads: tuple[tuple[int, int], ...], stride: int = 8) -> DecodeGeometry:
    """The ``DecodeGeometry`` of an image size and scale geometry, cached."""
    return DecodeGeometry(image_hw, low_shapes, pads, stride)


def find_peaks_lowres(geometry: DecodeGeometry, heatmaps: Sequence[np.ndarray],
                      thre1: float = CMU_GROUPING.thre1) -> list[np.ndarray]:
    """``grouping.find_peaks`` of the averaged heatmaps, from the network's heatmaps.

    ``heatmaps``: per scale (h, w, >=18) at the output stride, as in ``geometry``. Returns per
    part an (n, 3) float64 array of x, y and the averaged heatmap's value, row-major.
    """
    g = geometry
    block = g.block
    parts = [np.ascontiguousarray(h[:, :, :NUM_PARTS], dtype=np.float32) for h in heatmaps]
    block_x, part, block_y = _candidate_blocks(g, parts, thre1)
    if len(part) == 0:
        return [np.zeros((0, 3)) for _ in range(NUM_PARTS)]

    # Per scale: the row pass A_y @ X of every part at low horizontal resolution, then each
    # candidate block's rows with their ring, on the block's band of low-res columns.
    bands = []
    for s, x in zip(g.scales, parts, strict=True):
        h, w = x.shape[:2]
        rows = s.smooth_y @ x.reshape(h, w * NUM_PARTS)  # (H, w * 18)
        # A zero row above the image, and below it as far as the last block's ring reaches.
        row_pass = np.zeros((NUM_PARTS, g.blocks_y * block + 2, w + s.block_x.shape[2]),
                            np.float32)
        row_pass[:, 1:g.height + 1, :w] = np.moveaxis(rows.reshape(g.height, w, NUM_PARTS), 2, 0)
        windows = sliding_window_view(row_pass, (block + 2, s.block_x.shape[2]), axis=(1, 2))
        bands.append(windows[part, block_y * block, s.block_start_x[block_x]])  # (N, B+2, K)

    # Differences along x between neighbouring pixels of each block's rows: a pixel is a
    # maximum along its row when the difference before it is >= 0 and the one after <= 0.
    steps = np.zeros((len(part), block + 2, block + 1), np.float32)
    starts = np.flatnonzero(np.diff(block_x, prepend=-1))
    for begin, end in zip(starts, [*starts[1:], len(part)], strict=True):
        for s, band in zip(g.scales, bands, strict=True):
            weights = s.block_step_x[block_x[begin]]  # (B + 1, K)
            steps[begin:end] += (band[begin:end].reshape(-1, band.shape[2]) @ weights.T
                                 ).reshape(end - begin, block + 2, block + 1)
    steps = steps[:, 1:-1]  # the ring rows are not needed
    k, dy, dx = np.nonzero((steps[:, :, :-1] >= 0) & (steps[:, :, 1:] <= 0))

    # At those pixels only: the smoothed value, then its neighbours above and below.
    k, dy, dx = _keep(k, dy, dx, _smoothed(g, bands, block_x, k, dy + 1, dx + 1) > thre1)
    value = _smoothed(g, bands, block_x, k, dy + 1, dx + 1)
    above = _smoothed(g, bands, block_x, k, dy, dx + 1)
    below = _smoothed(g, bands, block_x, k, dy + 2, dx + 1)
    k, dy, dx = _keep(k, dy, dx, (value >= above) & (value >= below))
    peak_part = part[k]
    ys = block_y[k] * block + dy
    xs = block_x[k] * block + dx
    order = np.argsort((peak_part * g.height + ys) * g.width + xs)
    peak_part, ys, xs = peak_part[order], ys[order], xs[order]

    scores = _averaged_values(g, heatmaps, ys, xs, peak_part)
    counts = np.bincount(peak_part, minlength=NUM_PARTS)
    table = np.stack([xs, ys, scores], axis=1).astype(np.float64)
    return np.split(table, np.cumsum(counts)[:-1])


def _smoothed(geometry: DecodeGeometry, bands: Sequence[np.ndarray], block_x: np.ndarray,
              k: np.ndarray, row: np.ndarray, column: np.ndarray) -> np.ndarray:
    """The smoothed map at row ``row`` and column ``column`` (ring included) of candidate
    blocks ``k``: (n,) float32."""
    total = np.zeros(len(k), np.float32)
    for s, band in zip(geometry.scales, bands, strict=True):
        total += np.einsum("nk,nk->n", band[k, row], s.block_x[block_x[k], column])
    return total


def _keep(*arrays_and_mask: np.ndarray) -> tuple[np.ndarray, ...]:
    *arrays, mask = arrays_and_mask
    return tuple(a[mask] for a in arrays)


def _candidate_blocks(geometry: DecodeGeometry, parts: Sequence[np.ndarray],
                      thre1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column block, part, row block) of the blocks where the smoothed map can exceed
    ``thre1``, ordered by column block.

    With a = a+ - a-, b = b+ - b-, x = x+ - x- (rows' weights, columns' weights, map values),
    a b x <= (a+ b+ + a- b-) x+ + (a+ b- + a- b+) x-, each weight at its largest in the block.
    """
    g = geometry
    bound = np.zeros((g.blocks_y * NUM_PARTS, g.blocks_x))
    for s, x in zip(g.scales, parts, strict=True):
        h, w = x.shape[:2]
        split = np.stack([np.maximum(x, 0), np.maximum(-x, 0)], axis=1)  # (h, 2, w, 18)
        split = np.ascontiguousarray(np.moveaxis(split, 3, 2), dtype=np.float64)  # (h, 2, 18, w)
        rows = s.bound_y.reshape(-1, h) @ split.reshape(h, -1)  # (2 nBR, 2 * 18 * w)
        rows = rows.reshape(2, g.blocks_y, 2, NUM_PARTS * w)
        # rows[sign of a, :, sign of x]; a+ x+ and a- x- meet b+, a- x+ and a+ x- meet b-.
        meets_pos = (rows[0, :, 0] + rows[1, :, 1]).reshape(-1, w)
        meets_neg = (rows[1, :, 0] + rows[0, :, 1]).reshape(-1, w)
        bound += meets_pos @ s.bound_x[0].T + meets_neg @ s.bound_x[1].T
    extent = max(float(np.abs(x).max(initial=0.0)) for x in parts)
    limit = g.n_scales * (thre1 - BOUND_MARGIN * (1.0 + extent))
    above = (bound > limit).reshape(g.blocks_y, NUM_PARTS, g.blocks_x)
    return np.nonzero(np.transpose(above, (2, 1, 0)))


def _averaged_values(geometry: DecodeGeometry, maps: Sequence[np.ndarray], ys: np.ndarray,
                     xs: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """The averaged, up-sampled map at pixels (ys, xs) of channels ``channels``: (n,)."""
    total = np.zeros(len(ys))
    for s, x in zip(geometry.scales, maps, strict=True):
        by, bx = s.banded_y, s.banded_x
        h, w = x.shape[:2]
        padded = np.zeros((h + by.width, w + bx.width, x.shape[2]))
        padded[:h, :w] = x
        rows = by.start[ys][:, None, None] + np.arange(by.width)[:, None]
        cols = bx.start[xs][:, None, None] + np.arange(bx.width)
        patch = padded[rows, cols, channels[:, None, None]]  # (n, Ky, Kx)
        total += np.einsum("nk,nkl,nl->n", by.weights[ys], patch, bx.weights[xs])
    return total / geometry.n_scales


class LowResPafs:
    """The averaged PAFs of ``grouping.group_peaks``, computed at the pixels it asks for (a
    ``grouping.PafSampler``).

    ``pafs``: per scale the network's PAFs (h, w, 38), as in ``geometry``. Called with integer
    pixel rows and columns (arrays of one shape) and a limb, returns that limb's x and y PAF
    components there, as the faithful path's averaged maps hold them (float64).
    """

    def __init__(self, geometry: DecodeGeometry, pafs: Sequence[np.ndarray]) -> None:
        self.geometry = geometry
        self.height = geometry.height
        # Per scale (19, h, w) complex: a limb's x and y components as one number.
        self.pafs = [np.stack([p[:, :, cx] + 1j * p[:, :, cy].astype(np.float64)
                               for cx, cy in PAF_CHANNELS]) for p in pafs]

    def __call__(self, ys: np.ndarray, xs: np.ndarray, limb: int) -> tuple[np.ndarray,
                                                                           np.ndarray]:
        g = self.geometry
        top, bottom = int(ys.min(initial=0)), int(ys.max(initial=-1)) + 1
        # Rows first (M_y @ X for the rows the samples span, every scale side by side), then
        # each sample's band of columns.
        row_pass = np.zeros((max(bottom - top, 0), g.up_width), np.complex128)
        for s, paf, offset in zip(g.scales, self.pafs, g.up_offsets, strict=True):
            w = paf.shape[2]
            row_pass[:, offset:offset + w] = s.upsample_y[top:bottom] @ paf[limb]
        flat_x = xs.reshape(-1)
        index = (ys.reshape(-1, 1) - top) * g.up_width + g.up_columns[flat_x]
        values = np.einsum("nk,nk->n", np.take(row_pass, index), g.up_weights[flat_x])
        return values.real.reshape(xs.shape), values.imag.reshape(xs.shape)


def decode(outputs: Sequence[tuple[np.ndarray, np.ndarray]], pads: Sequence[tuple[int, int]],
           image_shape: tuple[int, ...], params: GroupingParams = CMU_GROUPING,
           stride: int = 8):
    """(peaks, people) of network outputs (per scale (heatmaps (h, w, 19), PAFs (h, w, 38)))
    with the input pads of ``inference.run_scales``, as the faithful path finds them."""
    from rtpose.grouping import group_peaks

    geometry = decode_geometry(tuple(image_shape[:2]),
                               tuple(tuple(h.shape[:2]) for h, _ in outputs),
                               tuple(tuple(p) for p in pads), stride)
    peaks = find_peaks_lowres(geometry, [h for h, _ in outputs], params.thre1)
    people = group_peaks(peaks, LowResPafs(geometry, [p for _, p in outputs]), params)
    return peaks, people
