"""Image-quality measures that need no trained network (numpy only).

`checkerboard_score` measures the period-2 texture that stride-2 transposed
convolutions paint into generated images (Odena et al. 2016, "Deconvolution
and Checkerboard Artifacts"): a 2 x 2 checkerboard, or stripes of period 2,
put their energy into a few known bins of the 2-D Fourier transform.
"""

import numpy as np


def _as_nhwc(images, name):
    array = np.asarray(images, dtype=np.float64)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(
            f"`{name}` must be an image (H, W, C) or a batch (N, H, W, C). "
            f"Received: {name} with shape {np.shape(images)}"
        )
    height, width = array.shape[1:3]
    if height % 2 or width % 2 or height < 2 or width < 2:
        raise ValueError(
            f"`{name}` needs even heights and widths: period 2 is then a frequency "
            f"bin of the FFT. Received: {name} with shape {array.shape}"
        )
    return array


def period2_fraction(images):
    """Per image: the share of its non-DC spectral energy at period 2.

    For an H x W image (H, W even) with 2-D DFT `X[ky, kx]` per channel, the
    energy is `E = |X|^2` summed over channels. Period 2 along y is the row of
    bins `ky = H/2`, along x the column `kx = W/2`; the union of the two lines
    (H + W - 1 bins; `(H/2, W/2)` is the 2 x 2 checkerboard itself) is divided
    by the energy of all bins but the mean `(0, 0)`.

    0 for an image without period-2 content, 1 for a pure checkerboard or
    period-2 stripes; white noise gives about (H + W - 1) / (H W - 1), and
    natural photographs, whose spectra fall off with frequency, less. A
    constant image has no non-DC energy and scores 0.

    Args:
        images: (N, H, W, C) or (H, W, C), any real scale (e.g. [-1, 1]).

    Returns:
        float64 array of N fractions in [0, 1].
    """
    images = _as_nhwc(images, "images")
    height, width = images.shape[1:3]
    energy = np.abs(np.fft.fft2(images, axes=(1, 2))) ** 2
    energy = energy.sum(axis=-1)  # (N, H, W) over channels
    lines = np.zeros((height, width), bool)
    lines[height // 2, :] = True
    lines[:, width // 2] = True
    total = energy.sum(axis=(1, 2)) - energy[:, 0, 0]
    at_period2 = energy[:, lines].sum(axis=1)
    # Rounding can leave a constant image a tiny non-DC energy; call it 0.
    scale = np.maximum(energy[:, 0, 0], 1.0)
    return np.where(total > 1e-12 * scale, at_period2 / np.maximum(total, 1e-300), 0.0)


def checkerboard_score(images, reference=None):
    """How much period-2 (checkerboard) texture `images` carry.

    Without `reference`: the mean over images of `period2_fraction`, the
    share of non-DC spectral energy on the period-2 lines `ky = H/2` and
    `kx = W/2` of the 2-D FFT (see there).

    With `reference` (e.g. ground truth, or the inputs): the ratio of the two
    means, `mean fraction(images) / mean fraction(reference)`. 1 means as
    much period-2 energy as the reference has; a generator that adds a
    checkerboard scores well above 1. A ratio of means, not a mean of
    ratios, so that one reference image without period-2 content cannot make
    the score infinite.

    Args:
        images: (N, H, W, C) or (H, W, C) with even H and W.
        reference: None, or images of the same height and width.

    Returns:
        float.

    Raises:
        ValueError: odd or mismatched sizes, or a reference without any
            period-2 energy to compare with.
    """
    score = float(np.mean(period2_fraction(images)))
    if reference is None:
        return score
    if np.shape(reference)[-3:-1] != np.shape(images)[-3:-1]:
        raise ValueError(
            "`reference` must have the height and width of `images`. Received: "
            f"images with shape {np.shape(images)}, reference with shape {np.shape(reference)}"
        )
    base = float(np.mean(period2_fraction(reference)))
    if base <= 0:
        raise ValueError(
            "`reference` has no period-2 energy to compare with (e.g. constant images); "
            "call checkerboard_score(images) without a reference."
        )
    return score / base
