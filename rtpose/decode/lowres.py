"""The fast decoder: the faithful decoder's peaks and people computed straight from the network's
low-resolution outputs, without up-sampling any map to the image size.

The faithful decoder (``rtpose.decode.faithful``) up-samples all 57 maps of every scale to the
image size, averages them and smooths the 18 part heatmaps at full resolution. All of that is
linear and separable (``rtpose.decode.operators``): the smoothed heatmap of part p is
``sum_s A_y,s @ X_s[p] @ A_x,s.T / n`` and the averaged map ``sum_s M_y,s @ X_s[p] @ M_x,s.T / n``.
So:

1. Peaks (``find_peaks_lowres``). The column pass ``R_s = A_y,s @ X_s`` (image rows, low-res
   columns) is cheap and done for every part. Over a block of ``BLOCK`` x ``BLOCK`` pixels the
   smoothed map is at most ``sum_k max_y R+[y, k] max_x A_x+[x, k] + (same for the negative
   parts)``; only the blocks where that bound reaches ``thre1`` can hold a peak. Their exact
   smoothed values, with a one-pixel ring for the 4-neighbour comparison (zero outside the
   image, as in the faithful decoder), come from one small matrix product per column of blocks
   and scale, in chunks of about ``CHUNK_BLOCKS`` blocks whose work arrays stay in cache. A
   peak's score is the averaged, unsmoothed map at that pixel.
2. Association. ``association.group_peaks`` reads the PAFs only at the rounded sample points of
   candidate limbs; ``LowResPafs`` computes the averaged PAF at exactly those pixels, from 5 x 5
   low-resolution taps per scale.

The smoothed values and the PAFs are float32 sums, the peak scores float64: they equal the
faithful decoder's up to float rounding (about 1e-7 of the maps' values). Peaks and people are
therefore the same, except where two neighbouring smoothed values tie to within that rounding
(see ``_block_peaks``): then a peak can be one pixel away. ``LowResOperators`` holds what
depends only on the image size and the scales, built from per-axis operators (``axis_y``,
``axis_x``); all three are cached, so that video frames and images of a common width or height
reuse them. Matrix products run on one BLAS thread (``single_threaded_blas``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from rtpose.config import CMU_GROUPING
from rtpose.decode.operators import Banded, smooth_columns
from rtpose.geometry import Geometry, upsampling_matrix
from rtpose.skeleton import NUM_LIMBS, NUM_PARTS

BLOCK = 8  # side of the blocks in which peaks are looked for, in image pixels
SIDE = BLOCK + 2  # a block with its one-pixel ring
# Margin on thre1 for the block bound, relative to the largest map value: far above the float32
# rounding of the bound and of the smoothed values.
BOUND_MARGIN = 1e-4
PASS_ROWS = 32  # rows of A_y per product of the column pass (on their band of columns only)
# Candidate blocks whose values are computed and searched at once: about 1 MB of work arrays.
CHUNK_BLOCKS = 1024
PAF_CHUNK = 4096  # pixels whose PAFs are computed at once (their work arrays stay in cache)
_INTERIOR = np.zeros((SIDE, SIDE), dtype=bool)
_INTERIOR[1:-1, 1:-1] = True
_BLAS = ThreadpoolController()


def single_threaded_blas() -> AbstractContextManager:
    """A context in which BLAS runs on one thread. The decoder's matrix products take a
    millisecond or less: on a busy machine, waiting for BLAS's other threads costs many times
    more than it saves."""
    return _BLAS.limit(limits=1, user_api="blas")


@dataclass(frozen=True)
class AxisY:
    """One scale's operators along y, for an image of ``H`` rows.

    ``column_pass`` (Hp, h) float32: A_y = G M_y with a zero row above the image and zero rows
    below it down to ``Hp = blocks_y * BLOCK + 2``, so that row ``1 + y`` is image row y.
    ``column_bands``: A_y in runs of ``PASS_ROWS`` rows, each as (first row, first column, its
    nonzero columns (rows, k)), for ``apply``. ``up``: M_y (H, h), banded, float64;
    ``paf_weights`` (K, H): its band weights, transposed, as ``paired`` (``LowResPafs``).
    """

    column_pass: np.ndarray
    column_bands: tuple[tuple[int, int, np.ndarray], ...]
    up: Banded
    paf_weights: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``column_pass @ x`` for x (h, n) float32: one product per run of rows, on its
        band of columns only."""
        out = np.empty((len(self.column_pass), x.shape[1]), np.float32)
        for row, column, band in self.column_bands:
            np.matmul(band, x[column:column + band.shape[1]], out=out[row:row + len(band)])
        return out


@dataclass(frozen=True)
class AxisX:
    """One scale's operators along x, for an image of ``W`` columns and ``n`` scales (the mean's
    1/n is folded into every weight but ``up``'s).

    ``bound`` (2 w, blocks_x) float32: per block of image columns, the largest positive weight
    of A_x = G M_x and its largest negative one (as a positive number), on each low-res column.
    ``block_start`` (blocks_x,), ``block_weights`` (blocks_x, K, SIDE) float32: A_x's rows for
    each block of columns and its ring (x0 - 1 .. x0 + BLOCK, zero outside the image), on the K
    low-res columns from ``block_start``. ``up``: M_x (W, w), banded, float64; ``paf_weights``
    (K, W): its band weights / n, transposed, as ``paired`` (``LowResPafs``).
    """

    bound: np.ndarray
    block_start: np.ndarray
    block_weights: np.ndarray
    up: Banded
    paf_weights: np.ndarray


def paired(weights: np.ndarray) -> np.ndarray:
    """``weights`` as complex64 of equal real and imaginary parts: viewed as float32, every
    weight twice in a row, to weigh a PAF's x and y components at once."""
    return np.ascontiguousarray(weights, np.float32).astype(np.complex64) * np.complex64(1 + 1j)


@lru_cache(maxsize=64)
def axis_y(n_low: int, pad: int, n_full: int, stride: int) -> AxisY:
    """The cached ``AxisY`` of a network output of ``n_low`` rows for an input padded by
    ``pad`` rows, in an image of ``n_full`` rows."""
    up = upsampling_matrix(n_low, pad, n_full, stride)
    column_pass = np.zeros((-(-n_full // BLOCK) * BLOCK + 2, n_low), np.float32)
    column_pass[1:n_full + 1] = smooth_columns(up)
    bands = []
    for row in range(0, len(column_pass), PASS_ROWS):
        used = np.flatnonzero(column_pass[row:row + PASS_ROWS].any(axis=0))
        first, end = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
        bands.append((row, first, column_pass[row:row + PASS_ROWS, first:end].copy()))
    banded_up = Banded.from_dense(up)
    return AxisY(column_pass, tuple(bands), banded_up, paired(banded_up.weights.T))


@lru_cache(maxsize=64)
def axis_x(n_low: int, pad: int, n_full: int, stride: int, n_scales: int = 1) -> AxisX:
    """The cached ``AxisX`` of a network output of ``n_low`` columns for an input padded by
    ``pad`` columns, in an image of ``n_full`` columns, one of ``n_scales`` scales."""
    blocks = -(-n_full // BLOCK)
    up = upsampling_matrix(n_low, pad, n_full, stride)
    smooth = np.zeros((blocks * BLOCK + 2, n_low))
    smooth[1:n_full + 1] = smooth_columns(up) / n_scales  # row 1 + x is image column x
    inner = smooth[1:-1].reshape(blocks, BLOCK, n_low)
    bound = np.concatenate([np.maximum(inner, 0).max(axis=1).T,
                            np.maximum(-inner, 0).max(axis=1).T])
    ringed = smooth[np.arange(blocks)[:, None] * BLOCK + np.arange(SIDE)]  # (blocks, SIDE, w)
    band = Banded.from_dense(np.abs(ringed).max(axis=1))
    columns = band.start[:, None, None] + np.arange(band.width)
    weights = np.take_along_axis(ringed, columns, axis=2).transpose(0, 2, 1)
    banded_up = Banded.from_dense(up)
    return AxisX(bound.astype(np.float32), band.start,
                 np.ascontiguousarray(weights, dtype=np.float32), banded_up,
                 paired((banded_up.weights / n_scales).T))


class LowResOperators:
    """What the fast decoder precomputes for one image size and scale geometry: per scale its
    (``AxisY``, ``AxisX``), shared with every image of the same rows or columns.
    ``low_shapes``: per scale the network output's (h, w)."""

    def __init__(self, geometry: Geometry, low_shapes: Sequence[tuple[int, int]]) -> None:
        if len(low_shapes) != geometry.n_scales:
            raise ValueError(f"need one output per scale, got {len(low_shapes)} for "
                             f"{geometry.n_scales} scales")
        self.height, self.width = geometry.image_hw
        self.low_shapes = tuple((int(h), int(w)) for h, w in low_shapes)
        self.n_scales = geometry.n_scales
        self.blocks_y = -(-self.height // BLOCK)
        self.blocks_x = -(-self.width // BLOCK)
        self.scales = [
            (axis_y(h, pad_down, self.height, geometry.stride),
             axis_x(w, pad_right, self.width, geometry.stride, self.n_scales))
            for (h, w), (pad_down, pad_right) in zip(self.low_shapes, geometry.pads, strict=True)]


@lru_cache(maxsize=16)
def lowres_operators(geometry: Geometry,
                     low_shapes: tuple[tuple[int, int], ...]) -> LowResOperators:
    """The cached ``LowResOperators`` of an image geometry and its outputs' shapes."""
    return LowResOperators(geometry, low_shapes)


def operators_for(heatmaps: Sequence[np.ndarray], geometry: Geometry) -> LowResOperators:
    """The cached ``LowResOperators`` of network outputs (per scale (h, w, C)) of ``geometry``."""
    return lowres_operators(geometry, tuple((int(h.shape[0]), int(h.shape[1])) for h in heatmaps))


def find_peaks_lowres(ops: LowResOperators, heatmaps: Sequence[np.ndarray],
                      thre1: float = CMU_GROUPING.thre1) -> list[np.ndarray]:
    """``peaks.find_peaks`` of the averaged heatmaps, from the network's heatmaps.

    ``heatmaps``: per scale (h, w, >=18) at the output stride, as in ``ops``. Returns per
    part an (n, 3) float64 array of x, y and the averaged heatmap's value, row-major.
    """
    return peaks_and_patches_lowres(ops, heatmaps, thre1)[0]


def peaks_and_patches_lowres(
    ops: LowResOperators, heatmaps: Sequence[np.ndarray], thre1: float = CMU_GROUPING.thre1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``peaks.peaks_and_patches`` from the network's heatmaps: ``find_peaks_lowres``' peaks
    and per part (n, 3, 3) the smoothed map around each, read off the blocks' values."""
    g = ops
    _check_shapes(g, heatmaps)
    # Per scale the column pass R = A_y X of every part: (Hp, 18, w), one product.
    parts = [np.ascontiguousarray(np.asarray(x[:, :, :NUM_PARTS], np.float32).transpose(0, 2, 1))
             for x in heatmaps]
    column_passes = [ay.apply(x.reshape(len(x), -1)).reshape(-1, NUM_PARTS, x.shape[2])
                     for (ay, _), x in zip(g.scales, parts, strict=True)]
    extent = max(float(np.abs(x).max(initial=0.0)) for x in parts)
    part, block_y, block_x = _candidate_blocks(g, column_passes,
                                               thre1 - BOUND_MARGIN * (1.0 + extent))
    # Per scale, every window of SIDE rows and K low-res columns of one part's column pass:
    # (Hp - SIDE + 1, 18, w - K + 1, SIDE, K).
    windows = [sliding_window_view(passes, (SIDE, ax.block_weights.shape[1]), axis=(0, 2))
               for (_, ax), passes in zip(g.scales, column_passes, strict=True)]
    # The blocks' values and peaks in chunks of whole columns of blocks, small enough to stay
    # in cache; with the 3 x 3 smoothed values around each peak, inside its ringed block.
    bounds = np.searchsorted(block_x, np.arange(g.blocks_x + 1)).tolist()
    found = []
    for columns in _chunks(bounds, CHUNK_BLOCKS):
        begin, end = columns[0][1], columns[-1][2]
        values = _block_values(g, windows, part[begin:end], block_y[begin:end],
                               [(c, first - begin, last - begin) for c, first, last in columns])
        k, row, column = _block_peaks(values, thre1)
        rows = (k * SIDE + row)[:, None, None] + np.arange(-1, 2)[:, None]
        around = values[rows, column[:, None, None] + np.arange(-1, 2)]
        found.append((k + begin, row, column, around))
    k, row, column = (np.concatenate([np.zeros(0, np.intp), *(f[c] for f in found)])
                      for c in range(3))
    around = np.concatenate([np.zeros((0, 3, 3), np.float32), *(f[3] for f in found)])
    ys = block_y[k] * BLOCK + row - 1
    xs = block_x[k] * BLOCK + column - 1
    inside = np.flatnonzero((ys < g.height) & (xs < g.width))
    order = inside[np.argsort((part[k[inside]] * g.height + ys[inside]) * g.width + xs[inside])]
    peak_part, ys, xs = part[k[order]], ys[order], xs[order]
    patches = around[order].astype(np.float64)

    scores = _averaged_values(g, heatmaps, ys, xs, peak_part)
    table = np.stack([xs, ys, scores], axis=1).astype(np.float64)
    splits = np.cumsum(np.bincount(peak_part, minlength=NUM_PARTS))[:-1]
    return np.split(table, splits), np.split(patches, splits)


def _chunks(bounds: list[int], size: int) -> list[list[tuple[int, int, int]]]:
    """Consecutive columns of blocks (column c: blocks ``bounds[c]`` .. ``bounds[c + 1] - 1``)
    in chunks of at least ``size`` blocks but the last: per chunk, (column, begin, end) of each
    of its columns that has blocks."""
    chunks, chunk = [], []
    for column, (begin, end) in enumerate(itertools.pairwise(bounds)):
        if end > begin:
            chunk.append((column, begin, end))
        if chunk and end - chunk[0][1] >= size:
            chunks.append(chunk)
            chunk = []
    return [*chunks, chunk] if chunk else chunks


def _check_shapes(ops: LowResOperators, maps: Sequence[np.ndarray]) -> None:
    shapes = tuple(tuple(m.shape[:2]) for m in maps)
    if shapes != ops.low_shapes:
        raise ValueError(f"maps of shapes {shapes} for operators of {ops.low_shapes}")


def _candidate_blocks(ops: LowResOperators, column_passes: Sequence[np.ndarray],
                      limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(part, block row, block column) of the blocks where the smoothed map can exceed
    ``limit``, ordered by block column.

    With R = A_y X and A_x split into positive and negative parts (R likewise), over a block
    ``R A_x <= max_y R+ max_x A_x+ + max_y R- max_x A_x-`` on each low-res column.
    """
    g = ops
    bound = np.zeros((g.blocks_y * NUM_PARTS, g.blocks_x), np.float32)
    for (_, ax), rows in zip(g.scales, column_passes, strict=True):
        w = rows.shape[2]
        inner = rows[1:g.blocks_y * BLOCK + 1].reshape(g.blocks_y, BLOCK, NUM_PARTS, w)
        split = np.empty((g.blocks_y, NUM_PARTS, 2 * w), np.float32)  # max_y R+, max_y R-
        np.maximum(inner.max(axis=1), 0, out=split[:, :, :w])
        np.maximum(np.negative(inner.min(axis=1)), 0, out=split[:, :, w:])
        bound += split.reshape(g.blocks_y * NUM_PARTS, 2 * w) @ ax.bound
    block_x, rest = np.divmod(np.flatnonzero((bound > limit).T), g.blocks_y * NUM_PARTS)
    block_y, part = np.divmod(rest, NUM_PARTS)
    return part, block_y, block_x


def _block_values(ops: LowResOperators, windows: Sequence[np.ndarray], part: np.ndarray,
                  block_y: np.ndarray, columns: list[tuple[int, int, int]]) -> np.ndarray:
    """The smoothed map over the given blocks and their rings: (N * SIDE, SIDE) float32, block
    k's rows at k * SIDE .. (k + 1) * SIDE - 1. ``windows``: per scale the column pass's
    windows (``peaks_and_patches_lowres``); ``columns``: (column, begin, end) of each column
    of blocks, whose blocks are begin .. end - 1.

    Per scale, the blocks' SIDE rows of the column pass on their block column's band of K
    low-res columns are gathered at once (one window per block); then per column of blocks,
    one product of its blocks' bands @ the column's weights."""
    first_rows = block_y * BLOCK  # of the ringed blocks, in the column passes' padded rows
    block_x = np.repeat([column for column, _, _ in columns],
                        [end - begin for _, begin, end in columns])
    values = np.empty((len(part) * SIDE, SIDE), np.float32)
    for scale, ((_, ax), window) in enumerate(zip(ops.scales, windows, strict=True)):
        bands = window[first_rows, part, ax.block_start[block_x]].reshape(len(part) * SIDE, -1)
        for column, begin, end in columns:
            rows = slice(begin * SIDE, end * SIDE)
            if scale:
                values[rows] += bands[rows] @ ax.block_weights[column]
            else:
                np.matmul(bands[rows], ax.block_weights[column], out=values[rows])
    return values


def _block_peaks(values: np.ndarray, thre1: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(block, row, column) in the ringed blocks of ``_block_values`` of the pixels above
    ``thre1`` and >= their left and upper neighbours and > their right and lower ones, ring
    excluded.

    The faithful path asks for >= all 4 neighbours, in its own float rounding: where two
    neighbours tie to within rounding (symmetric maps), which of them it keeps depends on that
    rounding. Here a tie keeps one of them, the later in row-major order, so that the number of
    peaks is the same. In the flat array a pixel's neighbours are 1 and SIDE away; the ring
    keeps every inner pixel's neighbours inside its block."""
    flat = values.reshape(-1)
    is_peak = np.greater(flat, thre1)
    blocks = is_peak.reshape(-1, SIDE, SIDE)
    blocks &= _INTERIOR
    # The first and last SIDE pixels are ring: the shifted views stay inside the array.
    center, peak = flat[SIDE:-SIDE], is_peak[SIDE:-SIDE]
    beaten = np.empty_like(peak)
    for shift, beats in ((-1, np.greater_equal), (-SIDE, np.greater_equal),
                         (1, np.greater), (SIDE, np.greater)):
        peak &= beats(center, flat[SIDE + shift:len(flat) - SIDE + shift], out=beaten)
    k, rest = np.divmod(np.flatnonzero(is_peak), SIDE * SIDE)
    row, column = np.divmod(rest, SIDE)
    return k, row, column


def _averaged_values(ops: LowResOperators, maps: Sequence[np.ndarray], ys: np.ndarray,
                     xs: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """The averaged, up-sampled map at pixels (ys, xs) of channels ``channels``: (n,) float64.
    ``maps``: per scale (h, w, C) at the output stride."""
    total = np.zeros(len(ys))
    for (ay, ax), x in zip(ops.scales, maps, strict=True):
        x = np.ascontiguousarray(x)
        _, w, c = x.shape
        base = (ay.up.start[ys] * w + ax.up.start[xs]) * c + channels
        offsets = (np.arange(ay.up.width)[:, None] * w + np.arange(ax.up.width)) * c
        patch = np.take(x.reshape(-1), base[:, None, None] + offsets)  # (n, taps_y, taps_x)
        total += np.einsum("ni,nij,nj->n", ay.up.weights[ys], patch, ax.up.weights[xs])
    return total / ops.n_scales


class LowResPafs:
    """The averaged PAFs of ``association.group_peaks``, computed at the pixels it asks for (a
    ``association.PafSampler``).

    ``pafs``: per scale the network's PAFs (h, w, 38), as in ``ops``. Called with integer
    pixel rows, columns and limbs (arrays of one shape), returns those limbs' x and y PAF
    components there: per scale the 5 x 5 low-res taps of ``M_y`` and ``M_x`` around the pixel
    (float32 sums, as float64).
    """

    def __init__(self, ops: LowResOperators, pafs: Sequence[np.ndarray]) -> None:
        _check_shapes(ops, pafs)
        self.ops = ops
        self.height = ops.height
        # Per scale, limb i's x and y (channels 2i, 2i+1) as one complex64, limb-major and
        # flat: (19 * h * w,).
        self._pairs = []
        for p in pafs:
            if p.shape[2] != 2 * NUM_LIMBS:
                raise ValueError(f"expected PAFs of {2 * NUM_LIMBS} channels, got {p.shape[2]}")
            pairs = np.ascontiguousarray(p, np.float32).view(np.complex64)
            self._pairs.append(np.ascontiguousarray(pairs.transpose(2, 0, 1)).reshape(-1))

    def __call__(self, ys: np.ndarray, xs: np.ndarray,
                 limbs: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        shape = np.shape(ys)
        ys, xs = np.ravel(ys), np.ravel(xs)
        limbs = np.ravel(np.broadcast_to(limbs, shape))
        total = np.zeros((len(ys), 2), np.float32)  # x and y of each pixel
        for begin in range(0, len(ys), PAF_CHUNK):
            chunk = slice(begin, begin + PAF_CHUNK)
            self._add(ys[chunk], xs[chunk], limbs[chunk], total[chunk].reshape(-1))
        total = total.astype(np.float64)
        return total[:, 0].reshape(shape), total[:, 1].reshape(shape)

    def _add(self, ys: np.ndarray, xs: np.ndarray, limbs: np.ndarray, total: np.ndarray) -> None:
        """Add the PAFs at pixels (ys, xs) of limbs ``limbs`` (n,) to ``total`` (2 n,), x and y
        interleaved, one scale after the other."""
        for (h, w), (ay, ax), pairs in zip(self.ops.low_shapes, self.ops.scales, self._pairs,
                                           strict=True):
            # Each y tap's row of x taps, (taps_x, 2 n) (x and y interleaved, as the paired
            # weights), weighted and added in the order of the taps (as the faithful decoder's
            # matrix products); then the x taps, in order.
            first = (limbs * h + ay.up.start[ys]) * w + ax.up.start[xs]
            taps = first + np.arange(ax.up.width)[:, None]
            weights_y = np.take(ay.paf_weights, ys, axis=1).view(np.float32)
            rows = np.take(pairs, taps).view(np.float32)
            rows *= weights_y[0]
            term = np.empty_like(rows)
            for tap in range(1, ay.up.width):
                taps += w
                rows += np.multiply(np.take(pairs, taps).view(np.float32), weights_y[tap],
                                    out=term)
            weights_x = np.take(ax.paf_weights, xs, axis=1).view(np.float32)
            scale_sum = rows[0] * weights_x[0]
            term = term[0]
            for tap in range(1, ax.up.width):
                scale_sum += np.multiply(rows[tap], weights_x[tap], out=term)
            total += scale_sum
