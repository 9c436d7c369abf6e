"""The faithful decoder's up-sampling and smoothing as matrices acting on the network's outputs.

For one scale, ``rtpose.geometry.upsample_maps`` is linear and acts on each axis separately:
a channel X (h, w) becomes ``M_y @ X @ M_x.T`` (H, W) in the image frame, with M_y (H, h) and
M_x (W, w) from ``rtpose.geometry.upsampling_matrix``. The multi-scale average is
``sum_s M_y,s @ X_s @ M_x,s.T / n``.

``rtpose.decode.peaks.find_peaks`` smooths with scipy's Gaussian (sigma 3, mode reflect,
truncate 4), also linear and separable: ``smooth_columns`` applies G (H, H). ``A = G @ M``
maps a network output straight to the smoothed heatmap:
``smoothed = sum_s A_y,s @ X_s @ A_x,s.T / n``.

Each output row depends on a few consecutive input rows (4 taps per resize, 25 for the
Gaussian), so the matrices are kept banded (``Banded``): 5 low-resolution taps per image pixel
for M, 5 to 8 for A.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtpose.decode.peaks import gaussian_smooth


@dataclass(frozen=True)
class Banded:
    """An (n_out, n_in) matrix whose row r is ``weights[r]`` at columns ``start[r]`` ..
    ``start[r] + K - 1`` and zero elsewhere. Every band lies inside the matrix (``0 <= start <=
    n_in - K``), so gathering ``start[r] + arange(K)`` never reads past the input."""

    start: np.ndarray  # (n_out,) intp
    weights: np.ndarray  # (n_out, K), the matrix's dtype
    n_in: int

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> Banded:
        n_in = matrix.shape[1]
        nonzero = matrix != 0
        any_nonzero = nonzero.any(axis=1)
        first = np.where(any_nonzero, np.argmax(nonzero, axis=1), 0)
        last = np.where(any_nonzero, n_in - 1 - np.argmax(nonzero[:, ::-1], axis=1), 0)
        width = min(int((last - first).max(initial=0)) + 1, n_in)
        start = np.minimum(first, n_in - width).astype(np.intp)
        columns = start[:, None] + np.arange(width)
        return cls(start, np.take_along_axis(matrix, columns, axis=1), n_in)

    @property
    def width(self) -> int:
        return self.weights.shape[1]

    def to_dense(self) -> np.ndarray:
        dense = np.zeros((len(self.start), self.n_in), self.weights.dtype)
        np.put_along_axis(dense, self.start[:, None] + np.arange(self.width), self.weights,
                          axis=1)
        return dense


def smooth_columns(matrix: np.ndarray) -> np.ndarray:
    """``G @ matrix``, G the (n, n) matrix of scipy's ``gaussian_filter`` along one axis (sigma
    ``PEAK_SIGMA``, mode reflect, truncate 4): the filter applied to each column, float64
    (``peaks.gaussian_smooth``)."""
    return gaussian_smooth(matrix, axis=0)
