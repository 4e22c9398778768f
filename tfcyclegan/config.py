"""Typed, validated configuration: what the paper varies, in one place.

Three frozen dataclasses, each validated when it is constructed, so a bad value is
caught where the user typed it rather than deep inside TensorFlow:

- `ModelConfig`: the four networks (G, F, D_X, D_Y).
- `DataConfig`: how images are loaded, resized, cropped and batched.
- `TrainConfig`: the objective's weights, the optimizer and the schedule.

`Config` bundles the three; it round-trips through `to_dict`/`from_dict` and JSON
(the run folder's `config.json`), and rejects unknown keys instead of ignoring them.
Defaults are the paper's (Zhu et al. 2017, section 4 and appendix 7).
"""

import dataclasses
import json
import re
from typing import Optional

from tfcyclegan import methods
from tfcyclegan.checks import check_int

GENERATORS = (
    "resnet_9blocks",
    "resnet_6blocks",
    "unet_128",
    "unet_256",
    "mobile_resnet_9blocks",
    "mobile_resnet_6blocks",
    "color",
)
DISCRIMINATORS = ("basic", "n_layers", "pixel")
NORMS = ("instance", "batch", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
UPSAMPLE_MODES = ("transpose", "resize_conv", "antialias")
GAN_MODES = ("lsgan", "vanilla", "hinge")
PREPROCESS_MODES = (
    "resize_and_crop",
    "crop",
    "scale_width",
    "scale_width_and_crop",
    "none",
)
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
METHODS = methods.names()
"""Translation methods (`tfcyclegan.methods`): CycleGAN, CUT and FastCUT (unpaired X, Y), pix2pix
(aligned (x, y) pairs); `distill` trains a small student generator from a trained run (the teacher)."""
PAIRED_METHODS = tuple(name for name, m in methods.METHODS.items() if m.data == methods.PAIRED)
TEACHER_METHODS = tuple(name for name, m in methods.METHODS.items() if m.data != methods.TEACHER)
"""Methods whose runs can teach a student."""
DATA_DIRECTIONS = ("AtoB", "BtoA")
DIFF_AUGMENT = ("color", "translation", "cutout")
"""DiffAugment's policies (Zhao et al. 2020), as `TrainConfig.diff_augment` names them."""
PRESETS = ("paper", "recommended", "look")
"""Starting settings: `paper` is each method's published configuration (the default);
`recommended` changes only what docs/quality.md measured to be better at an equal budget on
both of its benchmarks (real photos with a subtle look, synthetic seasons); `look` is the
per-pixel colour mode for colour grades, film looks and white balance (`.cube` export).
The methods' records (`tfcyclegan.methods`) hold what each preset changes."""

_RESNET_NAME = re.compile(r"^(mobile_)?resnet_(\d+)blocks$")
COLOR_LAYERS = 3
"""Hidden layers of the `color` generator (`ColorGenerator`): a smooth colour look needs few; at
ngf 64 the network costs 8.6k multiply-adds per pixel."""
DISTILL_LOSSES = ("l1", "l2")
NCE_LAYERS = (0, 4, 8, 12, 16)
"""CUT's default PatchNCE layers (the authors' `--nce_layers 0,4,8,12,16`): indices into
their ResNet generator's `nn.Sequential`. Index 16 is the fifth residual block of CUT's
anti-aliased generator (the seventh with `upsample="transpose"`), so a generator with
fewer blocks needs smaller indices."""


DIRECTIONS = ("a2b", "b2a")
"""Translation directions: "a2b" runs G (X -> Y, domain A to B), "b2a" runs F."""

# The paper's names (X -> Y) and the authors' (`--direction AtoB`) for the same
# directions, accepted wherever a direction is, in any case.
_DIRECTION_ALIASES = {"a2b": "a2b", "b2a": "b2a", "x2y": "a2b", "y2x": "b2a", "atob": "a2b", "btoa": "b2a"}


def check_choice(name, value, choices):
    """Raises a ValueError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}"
        )


def check_choices(name, values, choices):
    """`values` (one string or several) as a non-empty tuple of `choices`."""
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise ValueError(
            f"`{name}` must be a subset of {list(choices)}. Received: {name}={values!r}"
        )
    return values


def parse_direction(direction, allow_both=False):
    """The one reading of a translation direction, for the library and the CLI alike.

    Args:
        direction: `"a2b"` (G: A -> B) or `"b2a"` (F); the paper's `"x2y"`/`"y2x"` and
            the authors' `"AtoB"`/`"BtoA"` are aliases, in any case.
        allow_both: also accept `"both"`.

    Returns:
        `"a2b"`, `"b2a"` or `"both"`.
    """
    key = direction.lower() if isinstance(direction, str) else direction
    if allow_both and key == "both":
        return "both"
    if isinstance(key, str) and key in _DIRECTION_ALIASES:
        return _DIRECTION_ALIASES[key]
    choices = list(DIRECTIONS) + (["both"] if allow_both else [])
    raise ValueError(
        f"`direction` must be one of {choices} (or 'AtoB'/'BtoA', 'x2y'/'y2x'). "
        f"Received: direction={direction!r}"
    )


def data_direction(direction):
    """`DataConfig.direction`'s spelling (`"AtoB"`/`"BtoA"`) of any direction `parse_direction` reads.

    The data side keeps the authors' spelling because config.json files store it.
    """
    return {"a2b": "AtoB", "b2a": "BtoA"}[parse_direction(direction)]


def _check_positive(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {bound}. Received: {name}={value!r}")


def parse_diff_augment(policy):
    """A DiffAugment policy in its one spelling: `DIFF_AUGMENT` names joined by commas, or "".

    Takes a string ("translation, cutout") or a sequence of names; each at most once.
    """
    names = policy.split(",") if isinstance(policy, str) else policy
    if not isinstance(names, (tuple, list)):
        raise ValueError(
            f"`diff_augment` must be a comma-separated string of {list(DIFF_AUGMENT)}. "
            f"Received: diff_augment={policy!r}"
        )
    names = [str(name).strip() for name in names if str(name).strip()]
    if any(name not in DIFF_AUGMENT for name in names) or len(set(names)) != len(names):
        raise ValueError(
            f"`diff_augment` takes each of {list(DIFF_AUGMENT)} at most once, e.g. "
            f"'translation,cutout'. Received: diff_augment={policy!r}"
        )
    return ",".join(names)


def parse_generator(name):
    """Splits a generator name into its family and size.

    Args:
        name: `"resnet_<n>blocks"` (any n >= 0; the paper uses 9 at 256 px and 6
            at 128 px), `"mobile_resnet_<n>blocks"` (depthwise-separable
            residual blocks, for distilled students), `"unet_128"` /
            `"unet_256"`, or `"color"` (`ColorGenerator`: per-pixel, a 3D LUT).

    Returns:
        `("resnet", n_blocks)`, `("mobile_resnet", n_blocks)`, `("unet", num_downs)` or
        `("color", hidden_layers)`.
    """
    match = _RESNET_NAME.match(str(name))
    if match:
        return ("mobile_resnet" if match.group(1) else "resnet"), int(match.group(2))
    if name == "unet_128":
        return "unet", 7
    if name == "unet_256":
        return "unet", 8
    if name == "color":
        return "color", COLOR_LAYERS
    raise ValueError(
        f"`generator` must be one of {list(GENERATORS)} (or resnet_<n>blocks / "
        f"mobile_resnet_<n>blocks for any n). Received: generator={name!r}"
    )


class _Section:
    """Shared dict/JSON plumbing for the config sections."""

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values, dict):
            raise ValueError(
                f"{cls.__name__} expects a dict. Received: {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} keys: {unknown}. Known keys: {sorted(known)}"
            )
        return cls(**values)

    def replace(self, **changes):
        """Returns a copy with `changes` applied (and validated)."""
        return dataclasses.replace(self, **changes)

    def _check_int(self, name, minimum):
        """Checks the integer field `name`, kept as a Python int (JSON has no numpy ints)."""
        object.__setattr__(self, name, check_int(name, getattr(self, name), minimum))


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """The networks. Defaults are the CycleGAN paper's 256 px configuration.

    Args:
        method: `cyclegan` (G, F, D_X, D_Y; unpaired data), `pix2pix` (G and
            a conditional D; aligned pairs), `cut` or `fastcut` (G, D and
            PatchNCE heads; unpaired). `Config.for_method` gives each method's
            published defaults.
        generator: `resnet_9blocks` (paper, 256 px), `resnet_6blocks` (paper,
            128 px), `resnet_<n>blocks`, `unet_256` or `unet_128` (pix2pix's),
            `mobile_resnet_<n>blocks`, or `color` (per-pixel colour looks,
            exportable as a `.cube` 3D LUT; no `upsample` or `dropout`).
        ngf: filters in the generators' first layer (64 in the paper).
        ndf: filters in the discriminators' first layer (64).
        discriminator: `basic` is the 70x70 PatchGAN (`n_layers`=3); `n_layers`
            uses `n_layers_d`; `pixel` is the 1x1 PixelGAN.
        n_layers_d: stride-2 layers of the PatchGAN when `discriminator="n_layers"`.
        norm: `instance` (paper), `batch` (pix2pix) or `none`.
        dropout: dropout 0.5 in the generators (pix2pix uses it; CycleGAN does not).
        init_type: weight init; the paper draws N(0, 0.02) with zero biases.
        init_gain: scale of `init_type`.
        input_channels: channels of domain X images (3 RGB, 1 grayscale).
        output_channels: channels of domain Y images.
        conditional: pix2pix's D judges (x, y) concatenated (the paper);
            False judges y alone (the paper's unconditional ablation).
        upsample: the ResNet generator's upsampling: `transpose` (the paper's
            transposed convolutions; the authors' weights need it),
            `resize_conv` (x2 resize, then a 3x3 convolution: no checkerboard)
            or `antialias` (CUT's blur-pool down- and upsampling).
        color_branch: with `global_skip`, ResNet generators also add a
            per-pixel change of colour (1x1 convolutions on the input, no
            normalization, zero at the start) to their output.
        d_norm: the discriminators' normalization when it differs from
            `norm` (None: `norm`, as the paper). `none` keeps D's features'
            per-image means, where a global colour cast lives; instance norm
            removes them at every layer after the first.
        global_skip: ResNet generators output `clip(input + head, -1, 1)`
            with the head's convolution zero-initialized, so they start as
            the identity and training moves away from the input (the paper:
            False, `tanh(head)` from random weights). Needs equal input and
            output channels.
        nce_layers: CUT / FastCUT: the encoder layers PatchNCE compares, as
            indices into the authors' ResNet generator (`NCE_LAYERS`: 0, 4, 8,
            12, 16); a generator with fewer blocks needs smaller ones.
    """

    method: str = "cyclegan"
    generator: str = "resnet_9blocks"
    ngf: int = 64
    ndf: int = 64
    discriminator: str = "basic"
    n_layers_d: int = 3
    norm: str = "instance"
    dropout: bool = False
    init_type: str = "normal"
    init_gain: float = 0.02
    input_channels: int = 3
    output_channels: int = 3
    conditional: bool = True
    upsample: str = "transpose"
    global_skip: bool = False
    color_branch: bool = False
    d_norm: Optional[str] = None
    nce_layers: tuple = NCE_LAYERS

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        parse_generator(self.generator)
        check_choice("discriminator", self.discriminator, DISCRIMINATORS)
        check_choice("norm", self.norm, NORMS)
        if self.d_norm is not None:
            check_choice("d_norm", self.d_norm, NORMS)
        check_choice("init_type", self.init_type, INIT_TYPES)
        check_choice("upsample", self.upsample, UPSAMPLE_MODES)
        self._check_int("ngf", 1)
        self._check_int("ndf", 1)
        self._check_int("n_layers_d", 1)
        self._check_int("input_channels", 1)
        self._check_int("output_channels", 1)
        _check_positive("init_gain", self.init_gain)
        self._check_nce_layers()
        for name in ("dropout", "conditional", "global_skip", "color_branch"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}"
                )
        self._check_color_generator()
        self._check_skip()

    def _check_skip(self):
        """The identity start is the ResNet generators' (`global_skip`, and `color_branch` on it)."""
        if self.color_branch and not self.global_skip:
            raise ValueError(
                "`color_branch` adds a change of colour to the input, so it needs `global_skip=True` "
                "(tfcyclegan train: --global-skip). Received: color_branch=True, global_skip=False"
            )
        family = parse_generator(self.generator)[0]
        if self.global_skip and family not in ("resnet", "mobile_resnet"):
            raise ValueError(
                f"`global_skip` is for ResNet generators; {self.generator} "
                + ("has no single head to start at zero. " if family == "unet" else "always starts as the identity. ")
                + "Use a resnet_<n>blocks generator or global_skip=False."
            )

    def _check_color_generator(self):
        """Refuses settings the per-pixel `color` generator has no use for, rather than ignoring them."""
        if parse_generator(self.generator)[0] != "color":
            return
        # A preset may set them (pix2pix's dropout, `recommended`'s upsampling): the flag undoes it.
        for name, default, flag in (("upsample", "transpose", "--upsample transpose"),
                                    ("dropout", False, "--no-dropout")):
            if getattr(self, name) != default:
                raise ValueError(
                    f"generator='color' is a per-pixel network without upsampling or dropout, so "
                    f"`{name}` must stay {default!r} (tfcyclegan train: {flag}). "
                    f"Received: {name}={getattr(self, name)!r}"
                )
        if self.input_channels != self.output_channels:
            raise ValueError(
                "generator='color' adds a change of colour to each pixel, so domains X and Y need "
                f"the same channels. Received: input_channels={self.input_channels}, "
                f"output_channels={self.output_channels}"
            )

    def _check_nce_layers(self):
        layers = self.nce_layers
        if (
            not isinstance(layers, (tuple, list))
            or not layers
            or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers)
        ):
            raise ValueError(
                "`nce_layers` must be a non-empty sequence of integers >= 0 (encoder layer "
                f"indices, e.g. {NCE_LAYERS}). Received: nce_layers={layers!r}"
            )
        # A list from JSON becomes a tuple: the config stays hashable and equal to itself.
        object.__setattr__(self, "nce_layers", tuple(layers))

    @property
    def d_layers(self):
        """Stride-2 layers of the PatchGAN (`basic` is 3, the 70x70 one)."""
        return 3 if self.discriminator == "basic" else self.n_layers_d


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """How images become training batches (the reference's `--preprocess`).

    Args:
        load_size: images are first resized to this (286 in the paper).
        crop_size: then randomly cropped to this (256). Networks see this size.
        preprocess: `resize_and_crop` (paper), `crop`, `scale_width`,
            `scale_width_and_crop` or `none` (sizes rounded to a multiple of 4).
        flip: random horizontal flips during training.
        channels: 3 for RGB, 1 for grayscale.
        batch_size: images per step per domain (1 in the paper).
        cache: keep decoded, resized images in memory (augmentation still runs
            afterwards, so every epoch sees new crops).
        skip_bad_files: drop unreadable images (and say how many) instead of stopping.
        max_pixels: images with more pixels than this are refused (decompression bombs).
        direction: `AtoB` (x from A, y from B) or `BtoA` (the sides swapped),
            as the authors' `--direction`.
    """

    load_size: int = 286
    crop_size: int = 256
    preprocess: str = "resize_and_crop"
    flip: bool = True
    channels: int = 3
    batch_size: int = 1
    cache: bool = False
    skip_bad_files: bool = False
    max_pixels: int = 89_478_485  # PIL's own decompression-bomb threshold.
    direction: str = "AtoB"

    def __post_init__(self):
        check_choice("preprocess", self.preprocess, PREPROCESS_MODES)
        check_choice("direction", self.direction, DATA_DIRECTIONS)
        self._check_int("load_size", 1)
        self._check_int("crop_size", 1)
        self._check_int("batch_size", 1)
        self._check_int("max_pixels", 1)
        if self.channels not in (1, 3):
            raise ValueError(
                f"`channels` must be 1 or 3. Received: channels={self.channels!r}"
            )
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and (
            self.crop_size > self.load_size
        ):
            raise ValueError(
                f"`crop_size` must not exceed `load_size` with preprocess="
                f"{self.preprocess!r}. Received: crop_size={self.crop_size}, "
                f"load_size={self.load_size}"
            )
        for name in ("flip", "cache", "skip_bad_files"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}"
                )


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Section):
    """The objective, the optimizers and the schedule (paper section 4 / 7.1).

    Args:
        gan_mode: adversarial loss: `lsgan` (paper), `vanilla` (cross-entropy) or `hinge`.
        lambda_a: weight of the forward cycle ||F(G(x)) - x||_1 (paper's lambda, 10).
        lambda_b: weight of the backward cycle ||G(F(y)) - y||_1 (10).
        lambda_identity: identity loss weight as a fraction of lambda (0.5 in the
            paper: the identity terms are weighted 0.5 * lambda). 0 disables it.
        lambda_gan: weight of the generators' adversarial terms (1); 0 is the
            CycleGAN paper's "cycle alone" and pix2pix's "L1 alone".
        lambda_l1: pix2pix's weight of ||y - G(x)||_1 (100).
        lambda_nce: CUT's weight of PatchNCE (None: 1 for CUT, 10 for FastCUT).
        pool_size: history of generated images per direction shown to D (50); 0 disables.
        diff_augment: CycleGAN, CUT and FastCUT: differentiable augmentation of
            every image D sees (DiffAugment, `tfcyclegan.augment`), names from
            `DIFF_AUGMENT` joined by commas, e.g. "translation,cutout"; "" (the
            paper): none. Leave `color` out when the domains differ in colour.
        learning_rate: Adam's initial learning rate (2e-4).
        beta_1: Adam's beta_1 (0.5).
        beta_2: Adam's beta_2 (0.999).
        epochs: epochs at the initial learning rate (100).
        epochs_decay: epochs over which the rate then falls linearly to zero (100).
        seed: seeds weights, the pool and data order; with `deterministic` runs repeat.
        deterministic: enable TensorFlow's op determinism (slower, exactly
            repeatable). It is process-wide and cannot be turned off again, and
            it excludes XLA (`jit_compile`).
        jit_compile: compile the training step with XLA.
        mixed_precision: `none`, `mixed_float16` (with loss scaling) or `mixed_bfloat16`.
        steps_per_epoch: batches per epoch; None means max(|A|, |B|) / batch
            size, the reference's epoch.
        checkpoint_every: also checkpoint every this many steps (0: only at
            the end of each epoch).
        keep_checkpoints: how many recent checkpoints to keep.
        save_epoch_every: also keep the checkpoint of every this many epochs
            (`checkpoints/epochs/epoch-N`, never rotated away; 0: none), so
            that `--epoch N` can pick it later.
        sample_every: also write a sample grid every this many steps (0:
            only at the end of each epoch).
        num_samples: fixed test images shown in the sample grids.
        validate: compute the losses on the test split after every epoch,
            when the dataset has one.
        strategy: `default` (one device), `mirrored` (all local GPUs, or
            CPUs), `multi_worker` (`TF_CONFIG`) or `tpu`.
        evaluate_every: run `tfcyclegan evaluate`'s metrics on the test split
            every this many epochs, as TensorBoard scalars (0: off).
        fid_weights: with `evaluate_every`, also FID/KID with these weights.
    """

    gan_mode: str = "lsgan"
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5
    lambda_gan: float = 1.0
    lambda_l1: float = 100.0
    lambda_nce: Optional[float] = None
    pool_size: int = 50
    diff_augment: str = ""
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epochs: int = 100
    epochs_decay: int = 100
    seed: Optional[int] = None
    deterministic: bool = False
    jit_compile: bool = False
    mixed_precision: str = "none"
    steps_per_epoch: Optional[int] = None
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    save_epoch_every: int = 0
    sample_every: int = 0
    num_samples: int = 4
    validate: bool = True
    strategy: str = "default"
    evaluate_every: int = 0
    fid_weights: Optional[str] = None

    def __post_init__(self):
        check_choice("gan_mode", self.gan_mode, GAN_MODES)
        check_choice("strategy", self.strategy, STRATEGIES)
        if self.steps_per_epoch is not None:
            self._check_int("steps_per_epoch", 1)
        self._check_int("checkpoint_every", 0)
        self._check_int("keep_checkpoints", 1)
        self._check_int("save_epoch_every", 0)
        self._check_int("sample_every", 0)
        self._check_int("num_samples", 0)
        self._check_int("evaluate_every", 0)
        check_choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        if self.lambda_nce is not None:
            _check_positive("lambda_nce", self.lambda_nce, allow_zero=True)
        for name in ("lambda_a", "lambda_b", "lambda_identity", "lambda_gan", "lambda_l1"):
            _check_positive(name, getattr(self, name), allow_zero=True)
        _check_positive("learning_rate", self.learning_rate)
        for name in ("beta_1", "beta_2"):
            value = getattr(self, name)
            _check_positive(name, value, allow_zero=True)
            if value >= 1:
                raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value!r}")
        self._check_int("pool_size", 0)
        object.__setattr__(self, "diff_augment", parse_diff_augment(self.diff_augment))
        self._check_int("epochs", 0)
        self._check_int("epochs_decay", 0)
        if self.epochs + self.epochs_decay == 0:
            raise ValueError(
                "`epochs` + `epochs_decay` must be > 0. Received: epochs=0, epochs_decay=0"
            )
        if self.seed is not None:
            self._check_int("seed", 0)
        for name in ("deterministic", "jit_compile", "validate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"`{name}` must be a bool. Received: {name}={getattr(self, name)!r}"
                )
        if self.deterministic and self.jit_compile:
            # Keras would silently train without XLA: TensorFlow's op
            # determinism does not cover XLA-compiled steps.
            raise ValueError(
                "`deterministic` and `jit_compile` exclude each other (TensorFlow's op "
                "determinism does not cover XLA). Received: deterministic=True, jit_compile=True"
            )

    @property
    def total_epochs(self):
        return self.epochs + self.epochs_decay


@dataclasses.dataclass(frozen=True)
class DistillConfig(_Section):
    """A distillation run (`tfcyclegan distill`): its teacher and the student's objective.

    The student's architecture is the `ModelConfig` (`generator`, `ngf`, ...);
    its data and schedule are the `DataConfig` and `TrainConfig` (whose
    `lambda_gan` weighs the optional GAN term). This section says what it
    learns from.

    Args:
        teacher: the teacher's run folder (recorded as an absolute path).
        teacher_method: the teacher run's method (`cyclegan`, `pix2pix`, `cut`,
            `fastcut`); pix2pix teachers distill on aligned pairs.
        teacher_checkpoint: the teacher's checkpoint (`ckpt-N`, `epoch-N`);
            None: its newest state.
        teacher_epoch: or an epoch of the teacher run.
        direction: the teacher's direction the student learns: `a2b` (G) or
            `b2a` (F, CycleGAN teachers only).
        loss: the distance to the teacher's output: `l1` (GAN Compression's)
            or `l2`.
        lambda_distill: its weight (10, GAN Compression's lambda_recon).
        lambda_feature: weight of matching the teacher's residual-block
            features through 1x1 adapters (0: off; GAN Compression uses 10).
    """

    teacher: Optional[str] = None
    teacher_method: str = "cyclegan"
    teacher_checkpoint: Optional[str] = None
    teacher_epoch: Optional[int] = None
    direction: str = "a2b"
    loss: str = "l1"
    lambda_distill: float = 10.0
    lambda_feature: float = 0.0

    def __post_init__(self):
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise ValueError(
                f"`teacher` must be a run folder's path. Received: teacher={self.teacher!r}"
            )
        check_choice("teacher_method", self.teacher_method, TEACHER_METHODS)
        if self.teacher_checkpoint is not None and self.teacher_epoch is not None:
            raise ValueError(
                "Choose the teacher's checkpoint or its epoch, not both. Received: "
                f"teacher_checkpoint={self.teacher_checkpoint!r}, teacher_epoch={self.teacher_epoch!r}"
            )
        if self.teacher_epoch is not None:
            self._check_int("teacher_epoch", 1)
        parse_direction(self.direction)
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"`direction` must be one of {list(DIRECTIONS)}. Received: direction={self.direction!r}"
            )
        taught = methods.method(self.teacher_method).directions
        if self.direction not in taught:
            raise ValueError(
                f"A {self.teacher_method} teacher translates {' and '.join(taught)} only, so its "
                f"student does too. Received: direction={self.direction!r}"
            )
        check_choice("loss", self.loss, DISTILL_LOSSES)
        _check_positive("lambda_distill", self.lambda_distill, allow_zero=True)
        _check_positive("lambda_feature", self.lambda_feature, allow_zero=True)


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run: model, data and training sections (and `distill` for a distillation run)."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    distill: Optional[DistillConfig] = None

    _SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
    # Sections only some methods have: absent from config.json otherwise.
    _OPTIONAL = {"distill": DistillConfig}

    def __post_init__(self):
        for name, cls in self._SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(
                    f"`{name}` must be a {cls.__name__}. "
                    f"Received: {type(getattr(self, name)).__name__}"
                )
        if self.distill is not None and not isinstance(self.distill, DistillConfig):
            raise ValueError(
                f"`distill` must be a DistillConfig or None. Received: {type(self.distill).__name__}"
            )
        distilling = methods.method(self.model.method).data == methods.TEACHER
        if distilling != (self.distill is not None and self.distill.teacher is not None):
            raise ValueError(
                "A distillation run (method 'distill') needs a teacher, and only it has one: "
                "start it with `tfcyclegan distill --teacher RUN_DIR`. Received: "
                f"method={self.model.method!r}, distill={self.distill!r}"
            )
        record = methods.method(self.model.method)
        if self.train.diff_augment and "train.diff_augment" not in record.settings:
            users = [m.name for m in methods.METHODS.values() if "train.diff_augment" in m.settings]
            raise ValueError(
                f"`diff_augment` is for the methods {users}; {self.model.method} does not augment "
                f"what its discriminator sees. Received: diff_augment={self.train.diff_augment!r}"
            )

    @classmethod
    def for_method(cls, method="cyclegan", preset="paper"):
        """The published defaults of `method`, or the measured improvements on them.

        `preset="paper"` (the default) is the paper's exact configuration;
        `preset="recommended"` departs from it only where docs/quality.md
        measured a gain at equal training time: CycleGAN upsamples with
        `resize_conv` (the other methods are unchanged: nothing measured beats
        their published settings yet).

        Each method's record in `tfcyclegan.methods` holds its defaults:
        `cyclegan` the CycleGAN paper's (the dataclasses' defaults),
        `pix2pix` the authors' pix2pix (U-Net 256, batch norm, dropout,
        vanilla GAN, no pool), `cut` / `fastcut` the authors' CUT.
        """
        record = methods.method(method)
        if record.defaults is None:
            # A student's defaults come from its teacher run (channels, image size).
            raise ValueError(
                "A distillation run starts from a trained teacher run: use `tfcyclegan distill "
                "--teacher RUN_DIR` (or `tfcyclegan.distillation.student_config`). "
                f"Received: method={method!r}"
            )
        check_choice("preset", preset, PRESETS)
        if preset != "paper" and preset not in record.presets:
            having = [m.name for m in methods.METHODS.values() if preset in m.presets]
            raise ValueError(
                f"The preset {preset!r} is for the methods {having}; {method} has no such measured "
                f"settings. Received: method={method!r}, preset={preset!r}"
            )
        sections = {"model": {"method": method}}
        for changes in (record.defaults, record.presets.get(preset, {})):
            for section, values in changes.items():
                sections.setdefault(section, {}).update(values)
        return cls.from_dict(sections)

    @property
    def paired(self):
        """Whether the method trains on aligned (x, y) pairs (a student: as its teacher did)."""
        if self.distill is not None:
            return methods.method(self.distill.teacher_method).data == methods.PAIRED
        return methods.method(self.model.method).data == methods.PAIRED

    def _present(self):
        """{name: section} of the sections this config has."""
        present = {name: getattr(self, name) for name in self._SECTIONS}
        present.update({name: getattr(self, name) for name in self._OPTIONAL
                        if getattr(self, name) is not None})
        return present

    def to_dict(self):
        return {name: section.to_dict() for name, section in self._present().items()}

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values, dict):
            raise ValueError(f"Config expects a dict. Received: {type(values).__name__}")
        known = {**cls._SECTIONS, **cls._OPTIONAL}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"Unknown config sections: {unknown}. Known: {sorted(known)}"
            )
        sections = {
            name: section.from_dict(values.get(name, {}))
            for name, section in cls._SECTIONS.items()
        }
        sections.update({
            name: section.from_dict(values[name])
            for name, section in cls._OPTIONAL.items()
            if values.get(name) is not None
        })
        return cls(**sections)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"Config is not valid JSON: {error}") from None
        return cls.from_dict(values)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def diff(self, other):
        """Lists `section.key: mine -> other` for every value that differs."""
        lines = []
        mine, theirs = self.to_dict(), other.to_dict()
        for section in [*self._SECTIONS, *self._OPTIONAL]:
            if section not in mine and section not in theirs:
                continue
            if (section in mine) != (section in theirs):
                lines.append(f"{section}: {mine.get(section)!r} -> {theirs.get(section)!r}")
                continue
            for key in mine[section]:
                if mine[section][key] != theirs[section][key]:
                    lines.append(
                        f"{section}.{key}: {mine[section][key]!r} -> "
                        f"{theirs[section][key]!r}"
                    )
        return lines


def for_image_size(config, image_size):
    """`config` with the paper's settings for square images of `image_size` pixels.

    The paper's presets: 256 px uses 9 residual blocks and loads at 286; 128 px
    uses 6 blocks (section 7.2). Other sizes load in the same 286/256 proportion
    and take 6 blocks up to 128 px, 9 above.

    Args:
        config: the `Config` to start from.
        image_size: the training crop size, an integer >= 1.

    Returns:
        A new `Config`: `data.crop_size`, `data.load_size` and `model.generator` set.
    """
    check_int("image_size", image_size, 1)
    data = config.data.replace(crop_size=image_size, load_size=round(image_size * 286 / 256))
    generator = "resnet_6blocks" if image_size <= 128 else "resnet_9blocks"
    return config.replace(data=data, model=config.model.replace(generator=generator))
