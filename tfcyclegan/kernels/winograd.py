"""Winograd F(4x4, 3x3): a 3x3 convolution in 4x fewer multiplications.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (2016),
arXiv 1509.09308. Each 4x4 tile of outputs comes from the 6x6 window of inputs
under it, transformed (B^T d B) into 36 values per channel; the kernel is
transformed once (G g G^T) into 36 (cin x cout) matrices; the 36 products of
one (tiles x cin) @ (cin x cout) matmul each replace the 9 taps of the direct
convolution, and the output transform (A^T m A) turns 36 values back into the
4x4 outputs. Multiplications per output: 36 / 16 instead of 9.

Each transform acts on rows and columns at once, as one matrix product with
its Kronecker product with itself on flattened windows (B^T (x) B^T: 36 x 36;
A^T (x) A^T: 16 x 36; G (x) G: 36 x 9), and the windows are gathered from
the input in the order that product takes: a gather, the transforms' matmuls,
the 36 products (`_products`), a transpose and reshapes, ~50-160 graph ops a
convolution besides constants, where the transforms written out as slices and
sums of the separable form were ~700. A residual convolution's forward and both
gradients went from 0.74-0.93 to 0.54-0.65 of TensorFlow's own kernels' time
under oneDNN (AVX-512), and to 0.80-0.87 of the written-out form's time on Eigen
(AVX2).

Where it pays (benchmarks/bench_winograd.py; figures in docs/cpu_paths.md):
3x3 convolutions of 256 channels in and out, forward, took 0.55-0.82 of the
direct convolution's time on both TensorFlow paths (oneDNN, and Eigen limited
to AVX2; 2 cores) at every size measured with the written-out transforms,
batch 1 at 32-256 px squares and batch 4 at 64 px. With 128 channels they
took 0.80-0.93 on Eigen but 1.24-1.32x under oneDNN, so `MIN_CHANNELS` is 256
for both. `kernels.conv` trains with it too (forward, input gradient, and
`kernel_gradient`), on both paths.

Float32 error: ~1e-5 of the output's largest magnitude (the direct
convolution's: ~3e-7), from the transform's coefficients up to 8; the
ResNet generator's outputs move by < 1e-4 (tests/test_winograd.py).
"""

import numpy as np
import tensorflow as tf

from tfcyclegan.checks import check_int
from tfcyclegan.kernels import cpu

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
# residual block's forward and gradients through the tiles took, at 16 x 16, 0.98
# (batch 1) and 0.90 (batch 2) of the direct forms' time under oneDNN, 1.06 and
# 0.89 on Eigen/AVX2, with medians up to 1.18: no gain to count on; at 32 x 32
# 0.60-0.70 (Eigen/AVX2, 2 threads; min of 15 interleaved calls).
MIN_PIXELS = 32 * 32


def applies(kernel_shape, strides, dilation_rate, padding, input_shape=None):
    """Whether a convolution of these settings has a Winograd form here (3x3, stride 1,
    "valid", wide enough, on large enough images if `input_shape` (n, h, w, c) says
    how large). Whether the form is on here is the seam's to say (`kernels.enabled`)."""
    kh, kw, cin, cout = kernel_shape
    height, width = (None, None) if input_shape is None else tuple(input_shape)[1:3]
    small = height is not None and width is not None and (height - 2) * (width - 2) < MIN_PIXELS
    return (
        (kh, kw) == (3, 3)
        and tuple(strides) == (1, 1)
        and tuple(dilation_rate) == (1, 1)
        and padding == "valid"
        and min(cin, cout) >= MIN_CHANNELS
        and not small
    )


def _kronecker(a, dtype):
    """a (x) a, the Kronecker product of a transform with itself, as a constant: a applied
    along rows and along columns of a flattened square, (a m a^T) as one matrix product
    (element (i k, j l) is a[i, j] a[k, l]; row-major flattening, (i, j) of an s x s
    square at s i + j)."""
    return tf.constant(np.kron(np.array(a, np.float64), np.array(a, np.float64)), dtype)


def _dims(x):
    """x's shape, static sizes as ints and unknown ones as scalar tensors."""
    dynamic = tf.shape(x)
    return [dynamic[k] if size is None else size for k, size in enumerate(x.shape)]


def _to_whole_tiles(x, rows, columns):
    """x with zeros below and to the right up to `rows` x `columns` (x itself where it
    is known to be that size already)."""
    height, width = _dims(x)[1:3]
    if isinstance(height, int) and isinstance(width, int) and (height, width) == (rows, columns):
        return x
    return tf.pad(x, [[0, 0], [0, rows - height], [0, columns - width], [0, 0]])


def _check_reflect(reflect, shape):
    """ValueError for a reflection pad that is not a non-negative int, or not smaller
    than a known height or width of `shape` (as `tf.pad`'s "REFLECT" needs). Checked
    before the called functions, not in them: TensorFlow may run a call of known
    sizes through a trace made for unknown ones, where only `_windows`' run-time
    assertion would catch it."""
    check_int("reflect", reflect, 0)
    if reflect and any(size is not None and reflect >= size for size in tuple(shape)[1:3]):
        raise ValueError(
            f"Reflection padding of {reflect} needs a height and width larger than {reflect}. "
            f"Received: input shape {tuple(shape)}"
        )


def _sources(tiles, size, reflect):
    """(6, tiles): the row (or column) of x, `size` long, that window position i of
    tile t reads, x being padded by `reflect` rows reflected at each border (as
    TensorFlow's "REFLECT": the edge is not repeated). Windows overhanging the end
    read rows reflected back from it: their values meet only outputs that are
    cropped, or zeros of an upstream gradient, so any of x's values will do."""
    positions = tf.range(_WINDOW)[:, None] + TILE * tf.range(tiles)[None, :] - reflect
    last = size - 1
    return tf.maximum(last - tf.abs(last - tf.abs(positions)), 0)


def _windows(x, reflect=0):
    """The 6x6 windows at a stride of 4 of x (n, h + 2, w + 2, c), or of x (n, h + 2 -
    2 r, w + 2 - 2 r, c) reflection-padded by r = `reflect`, as (36, tiles * c):
    window position (i, j) at row 6 i + j, tiles in (image, tile row, tile column)
    order; and the tiling (n, tiles_h, tiles_w, h, w).

    One gather of x's pixels (each a row of c values) in that order: the window
    positions come out as rows of a matrix that B^T (x) B^T multiplies as it is,
    with no transpose (gathering them took 0.45 of the time of concatenating
    blocks of 4 rows and columns and transposing), and no padded copy of x,
    reflected or to whole tiles: the gather reads where those would.
    """
    n, height, width, cin = _dims(x)
    unknown = [size for size in (height, width) if not isinstance(size, int)]
    if reflect and unknown:  # (known sizes: `_check_reflect`)
        message = f"Reflection padding of {reflect} needs a height and width larger than {reflect}"
        checks = [tf.debugging.assert_greater(size, reflect, message=message) for size in unknown]
        with tf.control_dependencies(checks):
            x = tf.identity(x)
    out_h, out_w = height + 2 * reflect - 2, width + 2 * reflect - 2
    tiles_h, tiles_w = (out_h + TILE - 1) // TILE, (out_w + TILE - 1) // TILE
    # Broadcast over (i, j, image, tile row, tile column).
    rows = tf.reshape(_sources(tiles_h, height, reflect), [_WINDOW, 1, 1, -1, 1])
    columns = tf.reshape(_sources(tiles_w, width, reflect), [1, _WINDOW, 1, 1, -1])
    images = tf.reshape(tf.range(n), [1, 1, -1, 1, 1])
    pixel = (images * height + rows) * width + columns
    d = tf.gather(tf.reshape(x, [-1, cin]), tf.reshape(pixel, [-1]))
    return tf.reshape(d, [_WINDOW * _WINDOW, -1]), (n, tiles_h, tiles_w, out_h, out_w)


def _tiles(y, tiles_h, tiles_w):
    """(n, h, w, c) values as 4x4 tiles: (16, tiles * c), tile position (r, c) at 4 r + c;
    zeros where the tiles overhang."""
    n, cout = _dims(y)[0], y.shape[-1]
    y = _to_whole_tiles(y, TILE * tiles_h, TILE * tiles_w)
    y = tf.reshape(y, [n, tiles_h, TILE, tiles_w, TILE, cout])
    return tf.reshape(tf.transpose(y, [2, 4, 0, 1, 3, 5]), [TILE * TILE, -1])


def _untiled(y, tiling, cout):
    """The inverse of `_tiles`: (16, tiles * c) back to (n, h, w, c), overhang cropped."""
    n, tiles_h, tiles_w, height, width = tiling
    y = tf.transpose(tf.reshape(y, [TILE, TILE, n, tiles_h, tiles_w, cout]), [2, 3, 0, 4, 1, 5])
    y = tf.reshape(y, [n, TILE * tiles_h, TILE * tiles_w, cout])
    return y[:, :height, :width]


def _kernel_transform(dtype):
    """G (x) G: (36, 9), G g G^T as a matrix product."""
    return _kronecker(_G, dtype)


def transformed_kernel(kernel):
    """G g G^T of a (3, 3, cin, cout) kernel: (36, cin, cout).

    As one (36 x 9) @ (9 x cin * cout) product with the Kronecker product of G
    with itself: no transpose of the kernel (two einsums took ~3 ms a layer).
    """
    _, _, cin, cout = kernel.shape
    product = tf.matmul(_kernel_transform(kernel.dtype), tf.reshape(kernel, [9, cin * cout]))
    return tf.reshape(product, [_WINDOW * _WINDOW, cin, cout])


def _transformed_input(x, reflect):
    """B^T d B of every 6x6 window d of x at a stride of 4 (`_windows`): (36, tiles,
    cin), window position (i, j) at 6 i + j; and the tiling."""
    d, tiling = _windows(x, reflect)
    v = tf.matmul(_kronecker(_BT, x.dtype), d)
    return tf.reshape(v, [_WINDOW * _WINDOW, -1, x.shape[-1]]), tiling


def _batched():
    """Whether the 36 products run as one batched matmul: under oneDNN, not on
    TensorFlow's Eigen path, whose batched matmul ran them 1.15-1.4x slower than
    36 matmuls (a residual convolution's forward at 64 x 64, AVX2, 2 threads: 21.1
    against 15.7 ms); under oneDNN the batched one was ~4% faster and saves a stack's
    copy. An argument of the called functions, so that each path has its trace."""
    return not cpu.eigen_convolutions()


def _products(a, b, batched, **kwargs):
    """The 36 products a[k] @ b[k]: (36, ...). Slices of the first axis copy nothing."""
    if batched:
        return tf.matmul(a, b, **kwargs)
    return tf.stack([tf.matmul(a[k], b[k], **kwargs) for k in range(_WINDOW * _WINDOW)])


def _winograd(x, kernel, reflect, batched):
    """The valid 3x3 convolution of x (n, h + 2, w + 2, cin), or of x reflection-padded
    by `reflect`, by Winograd tiles."""
    v, tiling = _transformed_input(x, reflect)
    m = _products(v, transformed_kernel(kernel), batched)  # (36, tiles, cout)
    cout = kernel.shape[3]
    y = tf.matmul(_kronecker(_AT, x.dtype), tf.reshape(m, [_WINDOW * _WINDOW, -1]))  # A^T m A
    return _untiled(y, tiling, cout)


def _kernel_gradient(x, upstream, reflect, batched):
    """d/dkernel of the valid 3x3 convolution of x (n, h + 2, w + 2, cin), or of x
    reflection-padded by `reflect`, given the gradient of its (n, h, w, cout)
    outputs, through the same tiles: the outputs
    are A^T (U . V) A per tile, so d/dU = sum over tiles of V . (A dY A^T), one
    (cin x tiles) @ (tiles x cout) product per window position, and d/dkernel =
    G^T (d/dU) G. 36 products over tiles instead of 9 over pixels: 4x fewer
    multiplications than the per-tap products."""
    # V again, from x: the forward's V, kept for this, would hold 2.25x each
    # convolution's input until the backward pass.
    v, (n, tiles_h, tiles_w, height, width) = _transformed_input(x, reflect)
    cin, cout = x.shape[-1], upstream.shape[-1]
    # A dY A^T, with zeros for the outputs the forward crops (they reached no loss).
    g = tf.matmul(_kronecker(_AT, upstream.dtype), _tiles(upstream, tiles_h, tiles_w), transpose_a=True)
    du = _products(v, tf.reshape(g, [_WINDOW * _WINDOW, -1, cout]), batched, transpose_a=True)
    du = tf.reshape(du, [_WINDOW * _WINDOW, cin * cout])
    return tf.reshape(tf.matmul(_kernel_transform(x.dtype), du, transpose_a=True), [3, 3, cin, cout])


def _called(function):
    """`function` as one graph function per input shape, called by every convolution
    of that shape rather than inlined into the caller's graph (TensorFlow inlines
    nested functions unless told not to). Measured when the transforms were written
    out as ~700 graph ops a convolution (now ~50-160): inlined, a CycleGAN training
    step at 64 px (Eigen path) took 3.3 GiB and 95 s for its first step, against
    1.7 GiB and 25 s called (1.6 GiB and 16 s without Winograd); a ResNet-9
    SavedModel exported in 17.9 s instead of 5.1, loaded in 2.9 s instead of 0.5,
    and answered its first call in 6.2 s instead of 1.7, at the same speed after."""
    return tf.function(function, autograph=False, experimental_attributes={"_noinline": True})


_winograd_call = _called(_winograd)
_kernel_gradient_call = _called(_kernel_gradient)


def kernel_gradient(x, upstream, reflect=0):
    """d/dkernel of `conv3x3(x, kernel, reflect)` given the gradient of its outputs: (3,
    3, cin, cout), through Winograd tiles."""
    _check_reflect(reflect, x.shape)
    shape = [3, 3, x.shape[-1], upstream.shape[-1]]
    return tf.ensure_shape(_kernel_gradient_call(x, upstream, reflect, _batched()), shape)


def conv3x3(x, kernel, reflect=0):
    """The stride-1 "valid" convolution of x (n, h + 2, w + 2, cin) by a (3, 3, cin,
    cout) kernel, float32, by Winograd F(4x4, 3x3) tiles; any size, static or dynamic.

    With `reflect` = r, the convolution of x padded first by r rows and columns
    reflected at each border (`tf.pad(x, ..., "REFLECT")`), with no padded copy
    made: x is (n, h + 2 - 2 r, w + 2 - 2 r, cin), and r smaller than its height
    and width (as `tf.pad` needs; checked when the graph runs where not known).
    """
    _check_reflect(reflect, x.shape)
    n, h, w = x.shape[0], x.shape[1], x.shape[2]
    grow = 2 * reflect - 2
    shape = [n, None if h is None else h + grow, None if w is None else w + grow, kernel.shape[3]]
    return tf.ensure_shape(_winograd_call(x, kernel, reflect, _batched()), shape)
