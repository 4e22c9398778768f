"""Winograd F(4x4, 3x3): a 3x3 convolution's inference in 4x fewer multiplications.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016),
arXiv 1509.09308. Each 4x4 tile of outputs comes from the 6x6 window of inputs
under it, transformed (B^T d B) into 36 values per channel; the kernel is
transformed once (G g G^T) into 36 (cin x cout) matrices; the 36 products of
one (tiles x cin) @ (cin x cout) matmul each replace the 9 taps of the direct
convolution, and the output transform (A^T m A) turns 36 values back into the
4x4 outputs. Multiplications per output: 36 / 16 instead of 9.

The transforms are separable (rows, then columns) and are written as slices
and sums of a reshaped input: with the rows grouped in blocks of 4, a window
of 6 rows is a block and the first 2 rows of the next block, so the
overlapping windows are never gathered (extracting them as patches alone took
half as long as the direct convolution).

Where it pays (benchmarks/README.md, "Winograd"): 3x3 convolutions of 256
channels in and out, where it took 0.66-0.95 of the direct convolution's time
on both TensorFlow paths (oneDNN, and Eigen limited to AVX2; 2 cores) at every
size measured, batch 1 at 32-256 px squares and batch 2-8 at 64 px. With 128
channels it was 0.9-0.97 (Eigen) and 1.3-1.45x (oneDNN): `MIN_CHANNELS`.

Float32 error: ~1e-5 of the output's largest magnitude (the direct
convolution's: ~3e-7), from the transform's coefficients up to 8; the
ResNet generator's outputs move by ~1e-5 (tests/test_winograd.py).
"""

import contextlib
import contextvars

import tensorflow as tf

# The transforms of F(4x4, 3x3) with interpolation points 0, 1, -1, 2, -2, infinity
# (Lavin and Gray, section 4.2).
_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
_AT = (
    (1, 1, 1, 1, 1, 0),
    (0, 1, -1, 2, -2, 0),
    (0, 1, 1, 4, 4, 0),
    (0, 1, -1, 8, -8, 1),
)
TILE = 4
_WINDOW = TILE + 2

# Narrower convolutions keep the direct form (module docstring).
MIN_CHANNELS = 256

_direct = contextvars.ContextVar("tfcyclegan_direct_convolutions", default=False)


@contextlib.contextmanager
def direct_convolutions():
    """Inside this block, convolutions traced or run take the direct form.

    For graphs that other runtimes execute: LiteRT runs these convolutions as
    one CONV_2D faster than as this form's ~100 small ops (2.2x slower measured),
    and int8 quantization of the transformed values would lose precision.
    """
    token = _direct.set(True)
    try:
        yield
    finally:
        _direct.reset(token)


def applies(kernel_shape, strides, dilation_rate, padding):
    """Whether a convolution of these settings has a Winograd form here (3x3, stride 1,
    "valid", wide enough) and no `direct_convolutions` block is active."""
    kh, kw, cin, cout = kernel_shape
    return (
        not _direct.get()
        and (kh, kw) == (3, 3)
        and tuple(strides) == (1, 1)
        and tuple(dilation_rate) == (1, 1)
        and padding == "valid"
        and min(cin, cout) >= MIN_CHANNELS
    )


def _combine(parts, matrix):
    """The rows of `matrix` applied to a list of tensors: sums with few multiplies."""
    results = []
    for row in matrix:
        total = None
        for coefficient, part in zip(row, parts):
            if coefficient == 0:
                continue
            if total is None:
                total = part if coefficient == 1 else part * float(coefficient)
            elif coefficient == 1:
                total = total + part
            elif coefficient == -1:
                total = total - part
            else:
                total = total + part * float(coefficient)
        results.append(total)
    return results


def transformed_kernel(kernel):
    """G g G^T of a (3, 3, cin, cout) kernel: (36, cin, cout).

    As one (36 x 9) @ (9 x cin * cout) product with the Kronecker product of G
    with itself: no transpose of the kernel (two einsums took ~3 ms a layer).
    """
    g = tf.constant(_G, tf.float64)
    both = tf.cast(tf.reshape(tf.einsum("ai,bj->abij", g, g), [_WINDOW * _WINDOW, 9]), kernel.dtype)
    _, _, cin, cout = kernel.shape
    return tf.reshape(tf.matmul(both, tf.reshape(kernel, [9, cin * cout])), [_WINDOW * _WINDOW, cin, cout])


def _winograd(x, kernel, batched):
    """The valid 3x3 convolution of x (n, h + 2, w + 2, cin) by Winograd tiles."""
    cout = kernel.shape[3]
    shape = tf.shape(x)
    n, height, width = shape[0], shape[1] - 2, shape[2] - 2
    tiles_h = (height + TILE - 1) // TILE
    tiles_w = (width + TILE - 1) // TILE
    # Zeros below and to the right up to whole blocks of 4 plus the last window's
    # 2 extra rows and columns; the outputs they produce are cropped at the end.
    x = tf.pad(
        x,
        [
            [0, 0],
            [0, TILE * (tiles_h + 1) - (height + 2)],
            [0, TILE * (tiles_w + 1) - (width + 2)],
            [0, 0],
        ],
    )
    blocks = tf.reshape(x, [n, tiles_h + 1, TILE, tiles_w + 1, TILE, x.shape[-1]])
    # Window row i of tile t is row i of block t (i < 4) or row i - 4 of block t + 1.
    rows = [blocks[:, :-1, i] for i in range(TILE)] + [blocks[:, 1:, i] for i in range(2)]
    transformed = []
    for part in _combine(rows, _BT):  # (n, tiles_h, tiles_w + 1, 4, cin)
        columns = [part[:, :, :-1, j] for j in range(TILE)] + [part[:, :, 1:, j] for j in range(2)]
        transformed.extend(_combine(columns, _BT))
    tiles = n * tiles_h * tiles_w
    v = tf.reshape(tf.stack(transformed), [_WINDOW * _WINDOW, tiles, x.shape[-1]])
    u = transformed_kernel(kernel)
    if batched:
        m = tf.matmul(v, u)  # (36, tiles, cout)
    else:
        m = tf.stack([tf.matmul(v[i], u[i]) for i in range(_WINDOW * _WINDOW)])
    m = tf.reshape(m, [_WINDOW, _WINDOW, n, tiles_h, tiles_w, cout])
    out_rows = _combine([m[i] for i in range(_WINDOW)], _AT)  # 4 x (6, n, th, tw, cout)
    # Each output row r of the tile: its 4 columns next to each other.
    out = tf.stack(
        [tf.stack(_combine([row[j] for j in range(_WINDOW)], _AT), axis=-2) for row in out_rows],
        axis=2,
    )  # (n, tiles_h, 4, tiles_w, 4, cout)
    out = tf.reshape(out, [n, TILE * tiles_h, TILE * tiles_w, cout])
    return out[:, :height, :width]


def conv3x3(x, kernel, batched=True):
    """The stride-1 "valid" convolution of x (n, h + 2, w + 2, cin) by a 3x3 kernel,
    by Winograd F(4x4, 3x3) tiles; any size, static or dynamic.

    Args:
        x: float32 (n, h + 2, w + 2, cin).
        kernel: float32 (3, 3, cin, cout).
        batched: the 36 products as one batched matmul (fastest under oneDNN) or
            as 36 matmuls (TensorFlow's Eigen path: its batched matmul ran these
            shapes at 61 GFLOP/s, separate ones at 88, AVX2, 2 threads).
    """
    n, h, w = x.shape[0], x.shape[1], x.shape[2]
    shape = [n, None if h is None else h - 2, None if w is None else w - 2, kernel.shape[3]]
    return tf.ensure_shape(_winograd(x, kernel, batched), shape)
