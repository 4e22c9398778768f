"""The registry of translation methods: one record per method, everything else asks it.

A `Method` says what a method is: its model class, how a run's `Config` builds
and compiles it, which data it trains on, which directions it translates,
which config fields are its own settings, its published defaults and the name
its exported files take. Runs, export, the ablation runner, distillation and
the config's checks ask `method(name)` (or `method_of(model)`) instead of
testing method names, so adding a method is one model module and one record
in `METHODS` below.

The config validates method names and builds their defaults from this
registry, so this module sits below it and imports nothing of tfcyclegan: a
record names its model class as `"module:Class"`, imported when first used, and
`runs.build_model` builds and compiles a run's model from the record.
"""

import dataclasses
import importlib
from typing import Optional

UNPAIRED = "unpaired"
"""Data: batches of (x, y), images of X and of Y that need not correspond."""
PAIRED = "paired"
"""Data: aligned (x, y) pairs, an input and its target."""
TEACHER = "teacher"
"""Data: what the teacher run trained on (a distilled student)."""

DATA = (UNPAIRED, PAIRED, TEACHER)

COMMON_COMPILE_SETTINGS = ("train.gan_mode", "train.lambda_gan", "train.jit_compile")
"""Settings every method's `compile` takes, besides its own `compile_settings`."""


def setting_value(config, setting):
    """The value of `setting` ("section.field") in a `Config`."""
    section, field = setting.split(".")
    return getattr(getattr(config, section), field)


@dataclasses.dataclass(frozen=True)
class Method:
    """What one translation method is, for everything that is not its objective.

    Args:
        name: the method's name in configs and on the command line
            (`ModelConfig.method`).
        model: its `keras.Model` class, as `"module:Class"` (imported when
            first used; see `model_class`).
        data: `UNPAIRED`, `PAIRED` or `TEACHER` (as the teacher run did).
        directions: the directions it translates ("a2b" runs G, "b2a" F);
            None: the one direction its teacher's generator was taken from.
        compile_settings: the "section.field" settings of `Config` that are
            its `compile` arguments of the same name (its loss weights).
        build_settings: the "section.field" settings that are arguments of
            its `from_model_config` of the same name.
        model_arguments: constant `from_model_config` arguments (CUT's mode).
        defaults: its published configuration, `{section: {field: value}}`
            over the dataclasses' defaults (the CycleGAN paper's); None for a
            method whose settings come from a teacher run.
        presets: `{preset: changes}` over `defaults`, each measured in
            docs/quality.md (`Config.for_method(method, preset)`): `recommended`
            what was better at an equal budget on both of its benchmarks,
            `look` the per-pixel colour mode for colour grades and film looks.
        export_name: the stem of its exported files (`NAME_a2b`).
    """

    name: str
    model: str
    data: str
    directions: Optional[tuple]
    compile_settings: tuple = ()
    build_settings: tuple = ()
    model_arguments: dict = dataclasses.field(default_factory=dict)
    defaults: Optional[dict] = dataclasses.field(default_factory=dict)
    presets: dict = dataclasses.field(default_factory=dict)
    export_name: Optional[str] = None

    def __post_init__(self):
        if self.data not in DATA:
            raise ValueError(f"`data` must be one of {list(DATA)}. Received: data={self.data!r}")
        if self.export_name is None:
            object.__setattr__(self, "export_name", self.name)

    @property
    def settings(self):
        """Every "section.field" setting that is this method's own (compile and build)."""
        return self.compile_settings + self.build_settings

    @property
    def model_class(self):
        """The method's `keras.Model` subclass."""
        module, name = self.model.split(":")
        return getattr(importlib.import_module(module), name)

    def generators(self, model):
        """{direction: generator} of a model of this method: what translate and export run."""
        directions = self.directions or (model.direction,)
        return {direction: model.generator(direction) for direction in directions}


METHODS = {
    record.name: record
    for record in (
        Method(
            name="cyclegan",
            model="tfcyclegan.models.cyclegan:CycleGAN",
            data=UNPAIRED,
            directions=("a2b", "b2a"),
            compile_settings=("train.lambda_a", "train.lambda_b", "train.lambda_identity", "train.diff_augment"),
            build_settings=("train.pool_size",),
            # The CycleGAN paper's configuration is the dataclasses' defaults.
            defaults={},
            presets={
                "recommended": {"model": {"upsample": "resize_conv"}},
                # The per-pixel colour generator, He-initialized (it has no norm to
                # rescale its activations), against discriminators without instance
                # norm (it would remove the colour cast they must see).
                "look": {"model": {"generator": "color", "init_type": "kaiming", "d_norm": "none"}},
            },
        ),
        Method(
            name="pix2pix",
            model="tfcyclegan.models.pix2pix:Pix2Pix",
            data=PAIRED,
            directions=("a2b",),
            compile_settings=("train.lambda_l1",),
            build_settings=("model.conditional",),
            # The authors' `--model pix2pix`: U-Net 256 with batch norm and
            # dropout, a conditional 70x70 PatchGAN, vanilla GAN, lambda_L1
            # 100, no image pool; the same Adam, schedule (100 + 100 epochs),
            # batch 1 and load 286 / crop 256 / flip.
            defaults={
                "model": {"generator": "unet_256", "norm": "batch", "dropout": True},
                "train": {"gan_mode": "vanilla", "pool_size": 0},
            },
            presets={"recommended": {}},  # nothing measured beats the published settings yet
        ),
        # The authors' CUT: their ResNet-9 generator with blur-pool
        # anti-aliasing, the 70x70 PatchGAN, instance norm, LSGAN, no pool;
        # FastCUT trains 150 + 50 epochs.
        Method(
            name="cut",
            model="tfcyclegan.models.cut:CUT",
            data=UNPAIRED,
            directions=("a2b",),
            compile_settings=("train.lambda_nce", "train.diff_augment"),
            model_arguments={"mode": "cut"},
            defaults={"model": {"upsample": "antialias"}, "train": {"pool_size": 0}},
            presets={"recommended": {}},
        ),
        Method(
            name="fastcut",
            model="tfcyclegan.models.cut:CUT",
            data=UNPAIRED,
            directions=("a2b",),
            compile_settings=("train.lambda_nce", "train.diff_augment"),
            model_arguments={"mode": "fastcut"},
            defaults={
                "model": {"upsample": "antialias"},
                "train": {"pool_size": 0, "epochs": 150, "epochs_decay": 50},
            },
            presets={"recommended": {}},
            export_name="cut",
        ),
        Method(
            name="distill",
            model="tfcyclegan.models.distill:Distill",
            data=TEACHER,
            directions=None,
            compile_settings=("distill.loss", "distill.lambda_distill", "distill.lambda_feature"),
            build_settings=("distill.direction",),
            defaults=None,
            export_name="student",
        ),
    )
}
"""Every method by name, in the order commands list them."""


def names():
    """The methods' names, as `ModelConfig.method` takes them."""
    return tuple(METHODS)


def method(name):
    """The record of the method `name`.

    Raises:
        ValueError: no method has that name (the message lists those there are).
    """
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}. Received: method={name!r}")
    return METHODS[name]


def method_of(model):
    """The record of a model instance (a `CycleGAN`, `Pix2Pix`, `CUT`, `Distill`), else None."""
    for record in METHODS.values():
        if isinstance(model, record.model_class) and model.method == record.name:
            return record
    return None


__all__ = ["COMMON_COMPILE_SETTINGS", "DATA", "METHODS", "Method", "PAIRED", "TEACHER", "UNPAIRED", "method",
           "method_of", "names", "setting_value"]
