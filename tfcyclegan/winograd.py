"""Winograd F(4x4, 3x3): a 3x3 convolution in 4x fewer multiplications.

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

Where it pays (benchmarks/bench_winograd.py; figures in docs/cpu_paths.md):
3x3 convolutions of 256 channels in and out took 0.55-0.82 of the direct
convolution's time on both TensorFlow paths (oneDNN, and Eigen limited to
AVX2; 2 cores) at every size measured, batch 1 at 32-256 px squares and
batch 4 at 64 px; a whole ResNet-9 forward at 256 px 0.65-0.68. With 128
channels it was 0.80-0.93 on Eigen but 1.24-1.32x under oneDNN, so
`MIN_CHANNELS` is 256 for both. `EigenConv2D` also trains with it on the Eigen
path (forward, input gradient, and `kernel_gradient`): a 256 px CycleGAN step
on AVX2 went from 0.88x to 1.09-1.13x the reference's speed.

Float32 error: ~1e-5 of the output's largest magnitude (the direct
convolution's: ~3e-7), from the transform's coefficients up to 8; the
ResNet generator's outputs move by < 1e-4 (tests/test_winograd.py).
"""

import tensorflow as tf

from tfcyclegan import portable

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
# ...and so do smaller images, where known: per image, output rows x columns. A
# residual convolution's forward and both gradients on 16 x 16 took 1.29x (batch
# 1) and 0.93-0.98x (batch 2) the direct forms' time, on 32 x 32 0.74-0.90x
# (Eigen, AVX2, 2 threads).
MIN_PIXELS = 32 * 32


def applies(kernel_shape, strides, dilation_rate, padding, input_shape=None):
    """Whether a convolution of these settings has a Winograd form here (3x3, stride 1,
    "valid", wide enough, on large enough images if `input_shape` (n, h, w, c) says
    how large) and no `portable.portable_ops()` block is active."""
    kh, kw, cin, cout = kernel_shape
    height, width = (None, None) if input_shape is None else tuple(input_shape)[1:3]
    small = height is not None and width is not None and (height - 2) * (width - 2) < MIN_PIXELS
    return (
        not portable.active()
        and (kh, kw) == (3, 3)
        and tuple(strides) == (1, 1)
        and tuple(dilation_rate) == (1, 1)
        and padding == "valid"
        and min(cin, cout) >= MIN_CHANNELS
        and not small
    )


def _input_transform(p, two, four):
    """B^T applied along a list of 6 tensors: 6 tensors, in 5 multiplications and
    14 additions (the rows of `_BT`, with shared differences). `two` and `four`
    are scalar tensors made once per convolution (a Python float would add a
    constant to the graph at every multiplication)."""
    d31 = p[3] - p[1]
    d42 = p[4] - p[2]
    twice_d31 = d31 * two
    return [
        (p[0] - p[2]) * four + d42,  # 4 p0 - 5 p2 + p4
        (p[3] + p[4]) - (p[1] + p[2]) * four,  # -4 p1 - 4 p2 + p3 + p4
        (p[1] - p[2]) * four + (p[4] - p[3]),  # 4 p1 - 4 p2 - p3 + p4
        d42 + twice_d31,  # -2 p1 - p2 + 2 p3 + p4
        d42 - twice_d31,  # 2 p1 - p2 - 2 p3 + p4
        (p[5] - p[3]) - twice_d31 * two,  # 4 p1 - 5 p3 + p5
    ]


def _output_transform(m, two, four, eight):
    """A^T applied along a list of 6 tensors: 4 tensors, in 3 multiplications and
    10 additions (the rows of `_AT`)."""
    s12, d12 = m[1] + m[2], m[1] - m[2]
    s34, d34 = m[3] + m[4], m[3] - m[4]
    return [m[0] + s12 + s34, d12 + d34 * two, s12 + s34 * four, d12 + d34 * eight + m[5]]


def _upstream_transform(q, two, four, eight):
    """A (the transpose of `_AT`) applied along a list of 4 tensors: 6 tensors, in 3
    multiplications and 6 additions."""
    even, odd = q[0] + q[2], q[1] + q[3]
    even4, odd8 = q[0] + q[2] * four, q[1] * two + q[3] * eight
    return [q[0], even + odd, even - odd, even4 + odd8, even4 - odd8, q[3]]


def _windows(blocks, axis):
    """The 6 window positions along `axis` of tensors blocked in 4s on `axis` (the
    block index on the axis before it): positions 0-3 from blocks 0..T-1,
    4-5 from blocks 1..T. Two slices and two unstacks (few graph ops)."""
    lead = [slice(None)] * (axis - 1)
    first = blocks[tuple(lead + [slice(None, -1)])]
    second = blocks[tuple(lead + [slice(1, None), slice(None, 2)])]
    return tf.unstack(first, TILE, axis=axis) + tf.unstack(second, 2, axis=axis)


def _kernel_transform(dtype):
    """The Kronecker product of G with itself: (36, 9), G g G^T as a matrix product."""
    g = tf.constant(_G, tf.float64)
    return tf.cast(tf.reshape(tf.einsum("ai,bj->abij", g, g), [_WINDOW * _WINDOW, 9]), dtype)


def transformed_kernel(kernel):
    """G g G^T of a (3, 3, cin, cout) kernel: (36, cin, cout).

    As one (36 x 9) @ (9 x cin * cout) product with the Kronecker product of G
    with itself: no transpose of the kernel (two einsums took ~3 ms a layer).
    """
    _, _, cin, cout = kernel.shape
    product = tf.matmul(_kernel_transform(kernel.dtype), tf.reshape(kernel, [9, cin * cout]))
    return tf.reshape(product, [_WINDOW * _WINDOW, cin, cout])


def _transformed_input(x):
    """B^T d B of every 6x6 window of x (n, h + 2, w + 2, cin) at a stride of 4:
    36 (tiles, cin) matrices, window position (i, j) at 6 i + j, and the tiling
    (n, tiles_h, tiles_w, h, w)."""
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
    cin = x.shape[-1]
    two, four = (tf.constant(value, x.dtype) for value in (2.0, 4.0))
    blocks = tf.reshape(x, [n, tiles_h + 1, TILE, tiles_w + 1, TILE, cin])
    flat = tf.stack([n * tiles_h * tiles_w, cin])
    v = []
    for part in _input_transform(_windows(blocks, 2), two, four):  # (n, th, tw + 1, 4, cin)
        v.extend(tf.reshape(c, flat) for c in _input_transform(_windows(part, 3), two, four))
    return v, (n, tiles_h, tiles_w, height, width)


def _winograd(x, kernel):
    """The valid 3x3 convolution of x (n, h + 2, w + 2, cin) by Winograd tiles."""
    cout = kernel.shape[3]
    v, (n, tiles_h, tiles_w, height, width) = _transformed_input(x)
    two, four, eight = (tf.constant(value, x.dtype) for value in (2.0, 4.0, 8.0))
    u = transformed_kernel(kernel)
    # 36 matmuls, not one batched matmul of the stacked operands: no stacking
    # copies, and TensorFlow's Eigen batched matmul ran these shapes at 61 GFLOP/s
    # against 88 for separate ones (AVX2, 2 threads); under oneDNN separate ones
    # were also faster (12.6 against 15.1 ms at 64 x 64 x 256).
    tiled = tf.stack([n, tiles_h, tiles_w, cout])
    m = [tf.reshape(tf.matmul(v[k], u[k]), tiled) for k in range(len(v))]
    # A^T m A: along j for each i, then along i for each output column c.
    by_column = [
        _output_transform(m[_WINDOW * i:_WINDOW * (i + 1)], two, four, eight) for i in range(_WINDOW)
    ]
    outputs = [
        _output_transform([by_column[i][c] for i in range(_WINDOW)], two, four, eight)
        for c in range(TILE)
    ]
    # outputs[c][r]: output row r, column c of every tile.
    out = tf.stack(
        [tf.stack([outputs[c][r] for c in range(TILE)], axis=-2) for r in range(TILE)], axis=2
    )  # (n, tiles_h, 4, tiles_w, 4, cout)
    out = tf.reshape(out, [n, TILE * tiles_h, TILE * tiles_w, cout])
    return out[:, :height, :width]


def _kernel_gradient(x, upstream):
    """d/dkernel of the valid 3x3 convolution of x (n, h + 2, w + 2, cin), given the
    gradient of its (n, h, w, cout) outputs, through the same tiles: the outputs
    are A^T (U . V) A per tile, so d/dU = sum over tiles of V . (A dY A^T), one
    (cin x tiles) @ (tiles x cout) product per window position, and d/dkernel =
    G^T (d/dU) G. 36 products over tiles instead of 9 over pixels: 4x fewer
    multiplications than the per-tap products."""
    # V again, from x: the forward's V, kept for this, would hold 2.25x each
    # convolution's input until the backward pass.
    v, (n, tiles_h, tiles_w, height, width) = _transformed_input(x)
    cin, cout = x.shape[-1], upstream.shape[-1]
    two, four, eight = (tf.constant(value, upstream.dtype) for value in (2.0, 4.0, 8.0))
    # Zeros for the outputs the forward crops (they reached no loss).
    upstream = tf.pad(
        upstream, [[0, 0], [0, TILE * tiles_h - height], [0, TILE * tiles_w - width], [0, 0]]
    )
    blocks = tf.reshape(upstream, [n, tiles_h, TILE, tiles_w, TILE, cout])
    flat = tf.stack([n * tiles_h * tiles_w, cout])
    g = []  # 36 x (tiles, cout), A dY A^T at window position (i, j) at 6 i + j
    for part in _upstream_transform(tf.unstack(blocks, TILE, axis=2), two, four, eight):
        columns = _upstream_transform(tf.unstack(part, TILE, axis=3), two, four, eight)
        g.extend(tf.reshape(c, flat) for c in columns)
    du = tf.stack([tf.matmul(v[k], g[k], transpose_a=True) for k in range(len(v))])  # (36, cin, cout)
    du = tf.reshape(du, [_WINDOW * _WINDOW, cin * cout])
    return tf.reshape(tf.matmul(_kernel_transform(x.dtype), du, transpose_a=True), [3, 3, cin, cout])


def _called(function):
    """`function` as one graph function per input shape, called by every convolution
    of that shape rather than inlined into the caller's graph (TensorFlow inlines
    nested functions unless told not to). Inlined, each convolution adds ~700 graph
    ops: a CycleGAN training step at 64 px (Eigen path) took 3.3 GiB and 95 s for
    its first step, against 1.7 GiB and 25 s called (1.6 GiB and 16 s without
    Winograd); a ResNet-9 SavedModel exported in 17.9 s instead of 5.1, loaded in
    2.9 s instead of 0.5, and answered its first call in 6.2 s instead of 1.7, at
    the same speed after."""
    return tf.function(function, autograph=False, experimental_attributes={"_noinline": True})


_winograd_call = _called(_winograd)
_kernel_gradient_call = _called(_kernel_gradient)


def kernel_gradient(x, upstream):
    """d/dkernel of `conv3x3(x, kernel)` given the gradient of its outputs: (3, 3, cin,
    cout), through Winograd tiles."""
    return tf.ensure_shape(_kernel_gradient_call(x, upstream), [3, 3, x.shape[-1], upstream.shape[-1]])


def conv3x3(x, kernel):
    """The stride-1 "valid" convolution of x (n, h + 2, w + 2, cin) by a (3, 3, cin,
    cout) kernel, float32, by Winograd F(4x4, 3x3) tiles; any size, static or dynamic."""
    n, h, w = x.shape[0], x.shape[1], x.shape[2]
    shape = [n, None if h is None else h - 2, None if w is None else w - 2, kernel.shape[3]]
    return tf.ensure_shape(_winograd_call(x, kernel), shape)
