"""The generators and discriminators of CycleGAN and pix2pix.

Each network reproduces the authors' PyTorch module layer for layer
(junyanz/pytorch-CycleGAN-and-pix2pix, `models/networks.py`) so that their
weights load and give the same numbers; `tfcyclegan.torch_import` maps the
state_dict keys onto the layer names used here.

Porting notes (each checked against the reference outputs in `tests/`):
- PyTorch's `Conv2d(padding=1, stride=2)` is not Keras's `padding="same"`
  (which pads asymmetrically): we zero-pad explicitly and convolve `"valid"`.
- `ConvTranspose2d(stride=2, padding=p)` equals a `"valid"` Keras transposed
  convolution cropped to `[p : 2H + p]`.
- The last layer of every network computes in float32, as Keras's mixed
  precision guide recommends, so losses never see float16 outputs.

`ResnetGenerator(upsample=...)` also offers two generators the 2017 code does
not have (and whose weights therefore do not come from it): `resize_conv`
(Odena et al. 2016) and `antialias` (CUT's blur-pool generator, Park et al.
2020, taesungp/contrastive-unpaired-translation `models/networks.py` with
`no_antialias=False, no_antialias_up=False`).

`ColorGenerator` is tfcyclegan's own: a per-pixel network (1x1 convolutions,
identity at the start) whose function a 3D LUT carries (`export.cube`).

All networks are fully convolutional: inputs are `(None, None, C)`.
"""

import keras

from tfcyclegan.checks import check_int
from tfcyclegan.config import UPSAMPLE_MODES, parse_generator
from tfcyclegan.layers import (
    BlurPool2D,
    Conv2D,
    Cropping2D,
    GlobalSkip,
    InputSizeCheck,
    ReflectionPadding2D,
    ResidualBlock,
    Upsampling2x,
    kernel_initializer,
    normalization,
)

_NORMS = ("instance", "batch", "none")


def _check_args(network, norm, **ints):
    if norm not in _NORMS:
        raise ValueError(
            f"{network}: `norm` must be one of {list(_NORMS)}. Received: norm={norm!r}"
        )
    for name, (value, minimum) in ints.items():
        check_int(name, value, minimum, owner=network)


class _Network(keras.Model):
    """Config plumbing shared by the networks (keras-hub's Backbone pattern).

    Subclasses build a functional graph in `__init__` and list their init
    arguments in `_config_keys`; `get_config` returns those, so a saved network
    is rebuilt by calling the constructor again.
    """

    _config_keys = ()

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config["dtype"] = keras.dtype_policies.serialize(self.dtype_policy)
        config.update({key: getattr(self, key) for key in self._config_keys})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


class _Builder:
    """Creates the layers of one network with shared dtype and initializer."""

    def __init__(self, dtype, init_type, init_gain, seed):
        self.dtype = dtype
        self.init_type = init_type
        self.init_gain = init_gain
        self.seed = seed
        self._count = 0

    def initializer(self):
        # A distinct seed per layer: one seeded initializer reused everywhere
        # would give every layer of the same shape identical weights. Seeds
        # step by 2 because a ResidualBlock uses seed and seed + 1.
        self._count += 1
        seed = None if self.seed is None else self.seed * 10_000 + 2 * self._count
        return kernel_initializer(self.init_type, self.init_gain, seed)

    def conv(self, filters, kernel, strides, use_bias, name, transpose=False, zeros=False):
        layer = keras.layers.Conv2DTranspose if transpose else Conv2D
        initializer = self.initializer()  # drawn even for `zeros`: the other layers keep their seeds
        return layer(
            filters,
            kernel,
            strides=strides,
            padding="valid",
            use_bias=use_bias,
            kernel_initializer="zeros" if zeros else initializer,
            bias_initializer="zeros",
            dtype=self.dtype,
            name=name,
        )

    def norm(self, norm, x, name):
        layer = normalization(norm, name, dtype=self.dtype)
        return x if layer is None else layer(x)

    def zero_pad(self, x, name, amount=1):
        return keras.layers.ZeroPadding2D(amount, dtype=self.dtype, name=name)(x)

    def upsample(self, x, filters, kernel, padding, use_bias, name):
        """PyTorch's `ConvTranspose2d(kernel, stride 2, padding)`: 2x height and width."""
        x = self.conv(filters, kernel, 2, use_bias, f"{name}_conv", transpose=True)(x)
        # The "valid" result is 2H + kernel - 2 tall; PyTorch keeps [padding : 2H + padding].
        extra = kernel - 2 - padding
        return Cropping2D(
            ((padding, extra), (padding, extra)), dtype=self.dtype, name=f"{name}_crop"
        )(x)

    def relu(self, x, name):
        return keras.layers.ReLU(dtype=self.dtype, name=name)(x)

    def leaky_relu(self, x, name):
        # Keras's default slope is 0.3; the reference uses 0.2.
        return keras.layers.LeakyReLU(negative_slope=0.2, dtype=self.dtype, name=name)(x)


def _color_change(build, x, channels, ngf, n_layers, name):
    """r(x), a per-pixel change of colour: `n_layers` 1x1 convolutions + LeakyReLU, then a zero 1x1 one.

    No normalization (the change at a pixel depends on its colour alone, as a
    3D LUT's does); the last convolution starts at zero (kernel and bias), so
    r(x) = 0 until training moves it.
    """
    for i in range(n_layers):
        x = build.conv(ngf, 1, 1, True, f"{name}{i}_conv")(x)
        x = build.leaky_relu(x, f"{name}{i}_lrelu")
    return build.conv(channels, 1, 1, True, "change_conv" if name == "hidden" else f"{name}_change",
                      zeros=True)(x)


def _resnet_down(build, x, filters, upsample, norm, use_bias, name):
    """One of the ResNet generator's two halvings of height and width."""
    if upsample == "antialias":
        # CUT: Conv2d(3, stride 1, padding 1), norm, ReLU, then Downsample
        # (the blur pool) does the stride.
        x = build.zero_pad(x, f"{name}_pad")
        x = build.conv(filters, 3, 1, use_bias, f"{name}_conv")(x)
        x = build.norm(norm, x, f"{name}_norm")
        x = build.relu(x, f"{name}_relu")
        return BlurPool2D(dtype=build.dtype, name=f"{name}_blur")(x)
    # The paper (and resize_conv, which only changes the upsampling):
    # Conv2d(3, stride 2, padding 1), norm, ReLU.
    x = build.zero_pad(x, f"{name}_pad")
    x = build.conv(filters, 3, 2, use_bias, f"{name}_conv")(x)
    x = build.norm(norm, x, f"{name}_norm")
    return build.relu(x, f"{name}_relu")


def _resnet_up(build, x, filters, upsample, norm, use_bias, name):
    """One of the ResNet generator's two doublings of height and width."""
    if upsample == "transpose":
        # The paper: ConvTranspose2d(3, stride 2, padding 1, output_padding 1).
        x = build.upsample(x, filters, 3, 1, use_bias, name)
    elif upsample == "resize_conv":
        # Odena et al.: nearest x2, then a reflection-padded 3x3 convolution.
        x = Upsampling2x("nearest", dtype=build.dtype, name=f"{name}_resize")(x)
        x = ReflectionPadding2D(1, dtype=build.dtype, name=f"{name}_pad")(x)
        x = build.conv(filters, 3, 1, use_bias, f"{name}_conv")(x)
    else:
        # CUT: Upsample (the blur x2, = bilinear), then Conv2d(3, stride 1,
        # padding 1) - zero padding, as theirs.
        x = Upsampling2x("bilinear", dtype=build.dtype, name=f"{name}_blur")(x)
        x = build.zero_pad(x, f"{name}_pad")
        x = build.conv(filters, 3, 1, use_bias, f"{name}_conv")(x)
    x = build.norm(norm, x, f"{name}_norm")
    return build.relu(x, f"{name}_relu")


def _residual_block(build, x, filters, norm, dropout, use_bias, name):
    """The paper's residual block (`ResidualBlock`), as a graph step."""
    return ResidualBlock(
        filters,
        norm=norm,
        dropout=0.5 if dropout else 0.0,
        use_bias=use_bias,
        kernel_initializer=build.initializer(),
        dtype=build.dtype,
        name=name,
    )(x)


def _resnet_graph(network, block, input_channels, output_channels, ngf, n_blocks, norm, dropout,
                  init_type, init_gain, seed, upsample, global_skip, color_branch, dtype):
    """(inputs, outputs) of a ResNet generator whose residual blocks `block` makes.

    The stem, the two down- and upsamplings and the 7x7 head are the paper's;
    `block(build, x, filters, norm, dropout, use_bias, name)` is
    `_residual_block` (`ResnetGenerator`) or `_mobile_block`
    (`MobileResnetGenerator`). `network` names the class in errors. With
    `global_skip` the head's convolution starts at zero and the output is
    `GlobalSkip`'s `clip(input + head, -1, 1)` instead of `tanh(head)`;
    `color_branch` adds a per-pixel change of colour (`_color_change`) to it.
    """
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(
            f"{network}: `upsample` must be one of {list(UPSAMPLE_MODES)}. "
            f"Received: upsample={upsample!r}"
        )
    _check_args(
        network,
        norm,
        input_channels=(input_channels, 1),
        output_channels=(output_channels, 1),
        ngf=(ngf, 1),
        n_blocks=(n_blocks, 0),
    )
    if not isinstance(global_skip, bool):
        raise ValueError(f"{network}: `global_skip` must be a bool. Received: global_skip={global_skip!r}")
    if color_branch and not global_skip:
        raise ValueError(
            f"{network}: `color_branch` adds a change of colour to the input, so it needs "
            "`global_skip=True`. Received: color_branch=True, global_skip=False"
        )
    if global_skip and input_channels != output_channels:
        raise ValueError(
            f"{network}: `global_skip` adds the input to the output, so they need the same "
            f"channels. Received: input_channels={input_channels}, output_channels={output_channels}"
        )
    use_bias = norm != "batch"
    build = _Builder(dtype, init_type, init_gain, seed)
    inputs = keras.Input(shape=(None, None, input_channels), name="image")
    x = InputSizeCheck(4, 8, network, dtype=dtype, name="size_check")(inputs)
    x = ReflectionPadding2D(3, dtype=dtype, name="stem_pad")(x)
    x = build.conv(ngf, 7, 1, use_bias, "stem_conv")(x)
    x = build.norm(norm, x, "stem_norm")
    x = build.relu(x, "stem_relu")
    for i in range(2):
        x = _resnet_down(build, x, ngf * 2 ** (i + 1), upsample, norm, use_bias, f"down{i}")
    for i in range(n_blocks):
        x = block(build, x, ngf * 4, norm, dropout, use_bias, f"block{i}")
    for i in range(2):
        x = _resnet_up(build, x, ngf * 2 ** (1 - i), upsample, norm, use_bias, f"up{i}")
    x = ReflectionPadding2D(3, dtype=dtype, name="head_pad")(x)
    x = build.conv(output_channels, 7, 1, True, "head_conv", zeros=global_skip)(x)
    if color_branch:  # from the input itself: no instance norm has removed its colours
        color = _color_change(build, inputs, output_channels, ngf, 2, "color")
        x = keras.layers.Add(dtype=dtype, name="changes")([x, color])
    if global_skip:
        return inputs, GlobalSkip(dtype="float32", name="global_skip")([inputs, x])
    outputs = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return inputs, outputs


class _ResnetFamily(_Network):
    """What `ResnetGenerator` and `MobileResnetGenerator` share: arguments, graph
    (`_resnet_graph`) and config; a subclass names its residual block in `_block`."""

    _config_keys = (
        "input_channels",
        "output_channels",
        "ngf",
        "n_blocks",
        "norm",
        "dropout",
        "init_type",
        "init_gain",
        "seed",
        "upsample",
        "global_skip",
        "color_branch",
    )

    def __init__(
        self,
        input_channels=3,
        output_channels=3,
        ngf=64,
        n_blocks=9,
        norm="instance",
        dropout=False,
        init_type="normal",
        init_gain=0.02,
        seed=None,
        upsample="transpose",
        global_skip=False,
        color_branch=False,
        dtype=None,
        **kwargs,
    ):
        inputs, outputs = _resnet_graph(
            type(self).__name__, self._block, input_channels, output_channels, ngf, n_blocks, norm,
            dropout, init_type, init_gain, seed, upsample, global_skip, color_branch, dtype,
        )
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.ngf = ngf
        self.n_blocks = n_blocks
        self.norm = norm
        self.dropout = bool(dropout)
        self.init_type = init_type
        self.init_gain = init_gain
        self.seed = seed
        self.upsample = upsample
        self.global_skip = global_skip
        self.color_branch = color_branch


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ResnetGenerator(_ResnetFamily):
    """CycleGAN's generator: downsample twice, residual blocks, upsample twice.

    Layers, as the reference: reflection pad 3, 7x7 conv, norm, ReLU; two
    stride-2 3x3 convs (ngf*2, ngf*4) with norm and ReLU; `n_blocks`
    `ResidualBlock`s; two stride-2 transposed convs back to ngf; reflection pad
    3, 7x7 conv to `output_channels`, tanh. Outputs are in [-1, 1].

    `upsample` replaces the transposed convolutions, whose uneven overlap
    paints period-2 checkerboards (Odena et al. 2016). Every option has the
    same filters and the same number of parameters; only `transpose` loads
    the authors' weights.

    - `transpose`: the paper's, as above.
    - `resize_conv`: each transposed conv becomes nearest-neighbour x2,
      reflection pad 1, 3x3 conv (same filters), norm, ReLU. A constant
      feature map stays constant: no checkerboard by construction. The
      downsampling stays the paper's.
    - `antialias`: CUT's generator (`no_antialias=False`,
      `no_antialias_up=False`). Downsampling: zero pad 1, 3x3 conv stride 1,
      norm, ReLU, `BlurPool2D` (blur [1, 2, 1]^2 / 16, stride 2).
      Upsampling: `Upsampling2x("bilinear")` (CUT's blur `Upsample`), zero
      pad 1, 3x3 conv, norm, ReLU. The stride-1 down convolutions run at
      full resolution, so it costs more compute.

    Args:
        input_channels: channels of the input images.
        output_channels: channels of the output images.
        ngf: filters of the first layer (64 in the paper).
        n_blocks: residual blocks: 9 for 256 px images, 6 for 128 px (paper).
        norm: `instance` (paper), `batch` or `none`. Convolutions have biases
            unless `norm="batch"`, as in the reference.
        dropout: dropout 0.5 inside each residual block.
        init_type: `normal` (paper, N(0, init_gain)), `xavier`, `kaiming` or
            `orthogonal`; biases start at zero.
        init_gain: scale of the initialization (0.02).
        seed: seed for the initial weights.
        upsample: `transpose` (paper), `resize_conv` or `antialias` (above).
        global_skip: output `clip(input + head, -1, 1)` with the head's
            convolution zero-initialized, so the generator starts as the
            identity (`layers.GlobalSkip`); needs `input_channels ==
            output_channels`. False is the paper's `tanh(head)`.
        color_branch: with `global_skip`, also add a per-pixel change of
            colour computed from the input by 1x1 convolutions without
            normalization (the `ColorGenerator`'s, 2 hidden layers of ngf),
            zero at the start. The instance norms of the ResNet branch
            remove each feature map's mean, and with it most of a global
            colour cast; this branch sees the colours themselves.
        dtype: dtype policy, e.g. `"mixed_float16"`.
        **kwargs: standard model arguments (`name`, `trainable`).

    Height and width must be multiples of 4 and at least 8 (for every
    `upsample`: each halving is exact on even sizes).
    """

    _block = staticmethod(_residual_block)


@keras.saving.register_keras_serializable(package="tfcyclegan")
class UnetGenerator(_Network):
    """pix2pix's U-Net: `num_downs` stride-2 levels with skip connections.

    Level 0 (outermost) maps `input_channels` to ngf and back to
    `output_channels` with tanh; each deeper level doubles the filters up to
    ngf*8. The innermost level works at 1x1 when the input is 2**num_downs.

    A quirk of the reference is reproduced on purpose: its LeakyReLU runs in
    place on the tensor it also keeps for the skip connection, so every skip
    carries LeakyReLU(x), not x. Weights trained by the authors expect it.

    Args:
        input_channels: channels of the input images.
        output_channels: channels of the output images.
        num_downs: levels: 7 for 128 px (`unet_128`), 8 for 256 px (`unet_256`).
        ngf: filters of the outermost level (64).
        norm: `instance`, `batch` (pix2pix) or `none`.
        dropout: dropout 0.5 in the ngf*8 levels between the three outer
            middle levels and the innermost (pix2pix).
        init_type, init_gain, seed, dtype: as in `ResnetGenerator`.
        **kwargs: standard model arguments.

    Height and width must be multiples of 2**num_downs.
    """

    _config_keys = (
        "input_channels",
        "output_channels",
        "num_downs",
        "ngf",
        "norm",
        "dropout",
        "init_type",
        "init_gain",
        "seed",
    )

    def __init__(
        self,
        input_channels=3,
        output_channels=3,
        num_downs=8,
        ngf=64,
        norm="instance",
        dropout=False,
        init_type="normal",
        init_gain=0.02,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        _check_args(
            "UnetGenerator",
            norm,
            input_channels=(input_channels, 1),
            output_channels=(output_channels, 1),
            num_downs=(num_downs, 5),
            ngf=(ngf, 1),
        )
        use_bias = norm != "batch"
        build = _Builder(dtype, init_type, init_gain, seed)
        multiple = 2**num_downs

        def level(x, i):
            """Level i's output for input x (which is pre-activation for i > 0)."""
            inner = ngf * min(2**i, 8)
            outer = ngf * min(2 ** (i - 1), 8)
            if i == 0:
                x = build.conv(inner, 4, 2, use_bias, "down0_conv")(build.zero_pad(x, "down0_pad"))
                x = build.relu(level(x, 1), "up0_relu")
                x = build.upsample(x, output_channels, 4, 1, True, "up0")
                return keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
            innermost = i == num_downs - 1
            skip = build.leaky_relu(x, f"down{i}_lrelu")
            y = build.zero_pad(skip, f"down{i}_pad")
            y = build.conv(inner, 4, 2, use_bias, f"down{i}_conv")(y)
            if not innermost:
                y = build.norm(norm, y, f"down{i}_norm")
                y = level(y, i + 1)
            y = build.relu(y, f"up{i}_relu")
            y = build.upsample(y, outer, 4, 1, use_bias, f"up{i}")
            y = build.norm(norm, y, f"up{i}_norm")
            if dropout and 4 <= i < num_downs - 1:
                y = keras.layers.Dropout(0.5, dtype=dtype, name=f"up{i}_dropout")(y)
            return keras.layers.Concatenate(dtype=dtype, name=f"skip{i}")([skip, y])

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, input_channels), name="image")
        x = InputSizeCheck(
            multiple, multiple, "UnetGenerator", dtype=dtype, name="size_check"
        )(inputs)
        outputs = level(x, 0)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.num_downs = num_downs
        self.ngf = ngf
        self.norm = norm
        self.dropout = bool(dropout)
        self.init_type = init_type
        self.init_gain = init_gain
        self.seed = seed


@keras.saving.register_keras_serializable(package="tfcyclegan")
class PatchDiscriminator(_Network):
    """The PatchGAN discriminator: one real/fake score per overlapping patch.

    With `n_layers=3` each output sees a 70x70 patch (the paper's D) and a
    256x256 image gives 30x30 scores. Outputs are logits (no sigmoid): the
    adversarial loss decides how to read them.

    Args:
        input_channels: channels of the images judged.
        ndf: filters of the first layer (64).
        n_layers: stride-2 layers; 3 gives the 70x70 receptive field.
        norm: `instance` (paper), `batch` or `none` (never on the first layer).
        init_type, init_gain, seed, dtype: as in `ResnetGenerator`.
        **kwargs: standard model arguments.

    Height and width must be at least 3 * 2**n_layers (24 for n_layers=3).
    """

    _config_keys = (
        "input_channels",
        "ndf",
        "n_layers",
        "norm",
        "init_type",
        "init_gain",
        "seed",
    )

    def __init__(
        self,
        input_channels=3,
        ndf=64,
        n_layers=3,
        norm="instance",
        init_type="normal",
        init_gain=0.02,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        _check_args(
            "PatchDiscriminator",
            norm,
            input_channels=(input_channels, 1),
            ndf=(ndf, 1),
            n_layers=(n_layers, 1),
        )
        use_bias = norm != "batch"
        build = _Builder(dtype, init_type, init_gain, seed)

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, input_channels), name="image")
        # Each 4x4 stride-2 conv floors the size by half and the two 4x4
        # stride-1 convs take one pixel each, so 3 * 2**n_layers leaves 1x1.
        x = InputSizeCheck(
            1, 3 * 2**n_layers, "PatchDiscriminator", dtype=dtype, name="size_check"
        )(inputs)
        for i in range(n_layers + 1):
            strides = 2 if i < n_layers else 1
            x = build.zero_pad(x, f"conv{i}_pad")
            x = build.conv(ndf * min(2**i, 8), 4, strides, use_bias or i == 0, f"conv{i}")(x)
            if i > 0:
                x = build.norm(norm, x, f"conv{i}_norm")
            x = build.leaky_relu(x, f"conv{i}_lrelu")
        x = build.zero_pad(x, "logits_pad")
        x = build.conv(1, 4, 1, True, "logits_conv")(x)
        outputs = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.input_channels = input_channels
        self.ndf = ndf
        self.n_layers = n_layers
        self.norm = norm
        self.init_type = init_type
        self.init_gain = init_gain
        self.seed = seed


@keras.saving.register_keras_serializable(package="tfcyclegan")
class PixelDiscriminator(_Network):
    """The 1x1 PixelGAN discriminator: a real/fake score for every pixel.

    Three 1x1 convolutions (ndf, ndf*2, 1). It only judges colour, not
    structure; the paper mentions it as the smallest patch size.

    Args:
        input_channels, ndf, norm, init_type, init_gain, seed, dtype: as in
            `PatchDiscriminator`.
        **kwargs: standard model arguments.
    """

    _config_keys = ("input_channels", "ndf", "norm", "init_type", "init_gain", "seed")

    def __init__(
        self,
        input_channels=3,
        ndf=64,
        norm="instance",
        init_type="normal",
        init_gain=0.02,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        _check_args(
            "PixelDiscriminator", norm, input_channels=(input_channels, 1), ndf=(ndf, 1)
        )
        use_bias = norm != "batch"
        build = _Builder(dtype, init_type, init_gain, seed)

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, input_channels), name="image")
        x = build.conv(ndf, 1, 1, True, "conv0")(inputs)
        x = build.leaky_relu(x, "conv0_lrelu")
        x = build.conv(ndf * 2, 1, 1, use_bias, "conv1")(x)
        x = build.norm(norm, x, "conv1_norm")
        x = build.leaky_relu(x, "conv1_lrelu")
        x = build.conv(1, 1, 1, use_bias, "logits_conv")(x)
        outputs = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.input_channels = input_channels
        self.ndf = ndf
        self.norm = norm
        self.init_type = init_type
        self.init_gain = init_gain
        self.seed = seed


def _mobile_block(build, x, filters, norm, dropout, use_bias, name):
    """GAN Compression's mobile residual block: x + [sep conv, norm, relu, sep conv, norm](x).

    Each 3x3 convolution of `ResidualBlock` becomes a depthwise 3x3 (one
    filter per channel) and a pointwise 1x1: 9C + C^2 instead of 9C^2
    multiply-adds per pixel, ~8x less at C = 256. Unlike GAN Compression's
    `SeparableConv2d` there is no norm between the depthwise and pointwise
    convolutions: norms are memory-bound ops that a phone pays for at full
    feature-map size, and the norm after the pointwise one keeps each
    separable convolution normalized. The block output is the `Add` layer
    named `name`, like `ResidualBlock`'s, so feature matching finds it.
    """
    dtype = build.dtype
    y = x
    for i in (1, 2):
        y = ReflectionPadding2D(1, dtype=dtype, name=f"{name}_pad{i}")(y)
        y = keras.layers.DepthwiseConv2D(
            3,
            padding="valid",
            use_bias=False,  # the pointwise conv's bias follows
            depthwise_initializer=build.initializer(),
            dtype=dtype,
            name=f"{name}_depthwise{i}",
        )(y)
        y = build.conv(filters, 1, 1, use_bias, f"{name}_pointwise{i}")(y)
        y = build.norm(norm, y, f"{name}_norm{i}")
        if i == 1:
            y = build.relu(y, f"{name}_relu")
            if dropout:
                y = keras.layers.Dropout(0.5, dtype=dtype, name=f"{name}_dropout")(y)
    return keras.layers.Add(dtype=dtype, name=name)([x, y])


@keras.saving.register_keras_serializable(package="tfcyclegan")
class MobileResnetGenerator(_ResnetFamily):
    """A phone-sized ResNet generator: `ResnetGenerator` with depthwise-separable blocks.

    The "mobile ResNet" of GAN Compression (Li et al., CVPR 2020), the
    student architecture of `tfcyclegan distill`. The stem, the two
    downsamplings, the two upsamplings and the 7x7 head are
    `ResnetGenerator`'s (same layer names, same `upsample` options); each
    residual block is `_mobile_block`: reflection pad, depthwise 3x3,
    pointwise 1x1, norm, ReLU, then the same again without the ReLU, plus
    the input. At ngf 64 the nine blocks cost 5.0 GMAC at 256x256 instead of
    the paper's 43.5 GMAC; every op is a TFLite builtin (DEPTHWISE_CONV_2D,
    CONV_2D), so the generator exports like the others.

    Args:
        input_channels: channels of the input images.
        output_channels: channels of the output images.
        ngf: filters of the first layer; the blocks have ngf * 4.
        n_blocks: mobile residual blocks.
        norm: `instance`, `batch` or `none`.
        dropout: dropout 0.5 inside each block.
        init_type, init_gain, seed, upsample, global_skip, color_branch, dtype: as in
            `ResnetGenerator`.
        **kwargs: standard model arguments (`name`, `trainable`).

    Height and width must be multiples of 4 and at least 8.
    """

    _block = staticmethod(_mobile_block)


# === The colour generator: a per-pixel network, exportable as a 3D LUT ===


@keras.saving.register_keras_serializable(package="tfcyclegan")
class ColorGenerator(_Network):
    """A colour look: the same function applied to every pixel, as a 3D LUT is.

    Colour grading, film emulation and white balance change each pixel's
    colour by its colour alone. This generator can do nothing else: its
    layers are 1x1 convolutions, so the output at a pixel depends on that
    pixel only, and `tfcyclegan.export.cube` writes a trained one as a
    `.cube` 3D LUT (its function sampled on a grid of colours). It trains
    with CycleGAN's or pix2pix's objective, like the other generators.

    Layers: `n_layers` hidden 1x1 convolutions of `ngf` filters, each
    followed by LeakyReLU (slope 0.2), then a 1x1 convolution back to the
    image's channels, r(x); the output is clip(x + r(x), -1, 1). There is no
    normalization: instance norm would make the colour of a pixel depend on
    the statistics of the whole image, which no LUT can carry. The last
    convolution starts at zero (kernel and bias), so an untrained generator
    is the identity and training starts from the unchanged image.

    Args:
        input_channels: channels of the input images.
        output_channels: channels of the output images; must equal
            `input_channels` (the skip adds the input to the change).
        ngf: filters of each hidden layer (64).
        n_layers: hidden layers (3); 0 gives an affine colour matrix.
        init_type, init_gain: the hidden layers' initialization, as in
            `ResnetGenerator` (the last layer always starts at zero).
        seed: seed for the initial weights.
        dtype: dtype policy, e.g. `"mixed_float16"`.
        **kwargs: standard model arguments (`name`, `trainable`).

    Any height and width of at least 1 pixel.
    """

    _config_keys = (
        "input_channels",
        "output_channels",
        "ngf",
        "n_layers",
        "init_type",
        "init_gain",
        "seed",
    )

    def __init__(
        self,
        input_channels=3,
        output_channels=3,
        ngf=64,
        n_layers=3,
        init_type="normal",
        init_gain=0.02,
        seed=None,
        dtype=None,
        **kwargs,
    ):
        _check_args(
            "ColorGenerator",
            "none",
            input_channels=(input_channels, 1),
            output_channels=(output_channels, 1),
            ngf=(ngf, 1),
            n_layers=(n_layers, 0),
        )
        if input_channels != output_channels:
            raise ValueError(
                "ColorGenerator changes the colour of each pixel and adds the change to the "
                "input, so it needs as many output channels as input channels (a LUT maps a "
                "colour space onto itself). Received: "
                f"input_channels={input_channels}, output_channels={output_channels}"
            )
        build = _Builder(dtype, init_type, init_gain, seed)

        # === Functional model ===
        inputs = keras.Input(shape=(None, None, input_channels), name="image")
        x = InputSizeCheck(1, 1, "ColorGenerator", dtype=dtype, name="size_check")(inputs)
        # Zero kernel and bias: r(x) = 0, so the untrained generator is the identity.
        change = _color_change(build, x, output_channels, ngf, n_layers, "hidden")
        outputs = GlobalSkip(dtype="float32", name="global_skip")([x, change])
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.ngf = ngf
        self.n_layers = n_layers
        self.init_type = init_type
        self.init_gain = init_gain
        self.seed = seed


def build_generator(config, input_channels, output_channels, seed=None, dtype=None, name=None):
    """The generator `config.generator` names (a `ModelConfig`), upsampling as `config.upsample`."""
    family, depth = parse_generator(config.generator)
    # `ModelConfig` refuses `global_skip` / `color_branch` with the other families.
    if family == "color":
        # `ModelConfig` refuses the settings of other families with it (upsample, dropout),
        # and `norm` is the discriminators' here.
        return ColorGenerator(
            input_channels=input_channels,
            output_channels=output_channels,
            ngf=config.ngf,
            n_layers=depth,
            init_type=config.init_type,
            init_gain=config.init_gain,
            seed=seed,
            dtype=dtype,
            name=name,
        )
    if family == "unet" and config.upsample != "transpose":
        # Its skips concatenate onto each transposed conv's output; no one has
        # published a resize-conv pix2pix U-Net to match.
        raise ValueError(
            f"`upsample` other than 'transpose' is for ResNet generators; "
            f"{config.generator} uses transposed convolutions. Use a resnet_<n>blocks "
            f"generator or upsample='transpose'. Received: upsample={config.upsample!r}"
        )
    common = dict(
        input_channels=input_channels,
        output_channels=output_channels,
        ngf=config.ngf,
        norm=config.norm,
        dropout=config.dropout,
        init_type=config.init_type,
        init_gain=config.init_gain,
        seed=seed,
        dtype=dtype,
        name=name,
    )
    if family == "resnet":
        return ResnetGenerator(n_blocks=depth, upsample=config.upsample, global_skip=config.global_skip,
                               color_branch=config.color_branch, **common)
    if family == "mobile_resnet":
        return MobileResnetGenerator(n_blocks=depth, upsample=config.upsample, global_skip=config.global_skip,
                                     color_branch=config.color_branch, **common)
    return UnetGenerator(num_downs=depth, **common)


def build_discriminator(config, input_channels, seed=None, dtype=None, name=None):
    """The discriminator `config.discriminator` names (a `ModelConfig`)."""
    common = dict(
        input_channels=input_channels,
        ndf=config.ndf,
        norm=config.d_norm or config.norm,
        init_type=config.init_type,
        init_gain=config.init_gain,
        seed=seed,
        dtype=dtype,
        name=name,
    )
    if config.discriminator == "pixel":
        return PixelDiscriminator(**common)
    return PatchDiscriminator(n_layers=config.d_layers, **common)


def size_requirement(generator):
    """`(multiple, min_size)`: the heights and widths `generator` takes.

    Read from the "size_check" layer every tfcyclegan generator has; it
    survives save/load and is also in plain functional generators (pix2pix
    imports).
    """
    try:
        layer = generator.get_layer("size_check")
    except ValueError:
        raise ValueError(
            f"Cannot tell which image sizes the model {generator.name!r} takes: it has no "
            "'size_check' layer (tfcyclegan generators have one)."
        ) from None
    return int(layer.multiple), int(layer.min_size)
