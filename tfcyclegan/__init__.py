"""tfcyclegan: CycleGAN (Zhu et al. 2017) and pix2pix (Isola et al. 2017) for TensorFlow / Keras 3.

    import tfcyclegan
    model = tfcyclegan.CycleGAN.from_model_config(tfcyclegan.ModelConfig())
    model.compile()
    data = tfcyclegan.unpaired_dataset("horses/", "zebras/", tfcyclegan.DataConfig())
    model.fit(data.dataset, steps_per_epoch=data.steps_per_epoch, epochs=200)

    pairs = tfcyclegan.resolve_pairs(data="facades/", split="train")
    data = tfcyclegan.paired_dataset(pairs, tfcyclegan.DataConfig())
    model = tfcyclegan.Pix2Pix.from_model_config()   # the authors' pix2pix

    tfcyclegan.distill("runs/h2z", "runs/h2z_student")  # a phone-sized student of a trained run

Importing the package registers its Keras classes, so `keras.saving.load_model`
reloads saved models after `import tfcyclegan`. TensorFlow itself is imported
only when something needs it (see `tfcyclegan.lazy`): the names below load on
first use, and the Keras classes are registered as soon as Keras is imported,
so that the `tfcyclegan` command answers `--help` without loading TensorFlow.
"""

from tfcyclegan import lazy as _lazy
from tfcyclegan.kernels import cpu as _cpu
from tfcyclegan.version import __version__

# Before anything imports TensorFlow: Eigen where oneDNN would run below
# AVX-512 (slower there), unless the user set TF_ENABLE_ONEDNN_OPTS (see kernels/cpu.py).
_cpu.choose_tensorflow_path_at_startup()

# Public name -> the module defining it (imported on first use).
_EXPORTS = {
    **dict.fromkeys(("Checkpointing", "GracefulStop", "SampleGrid", "Throughput", "sample_grid"),
                    "tfcyclegan.callbacks"),
    **dict.fromkeys(("Config", "DataConfig", "ModelConfig", "TrainConfig"), "tfcyclegan.config"),
    **dict.fromkeys(("check_images", "list_images", "load_image", "paired_dataset", "resolve_domains",
                     "resolve_pairs", "unpaired_dataset"), "tfcyclegan.data"),
    **dict.fromkeys(("InstanceNormalization", "ReflectionPadding2D", "ResidualBlock"), "tfcyclegan.layers"),
    "AdversarialLoss": "tfcyclegan.losses",
    "CycleGAN": "tfcyclegan.models",
    "Distill": "tfcyclegan.models",
    "Pix2Pix": "tfcyclegan.models",
    "TorchAdam": "tfcyclegan.models.base",
    **dict.fromkeys(("ColorGenerator", "MobileResnetGenerator", "PatchDiscriminator", "PixelDiscriminator",
                     "ResnetGenerator", "UnetGenerator"), "tfcyclegan.networks"),
    **dict.fromkeys(("distill", "student_config"), "tfcyclegan.distillation"),
    "ImagePool": "tfcyclegan.pool",
    "LinearDecay": "tfcyclegan.schedules",
    **dict.fromkeys(("make_demo_dataset", "make_paired_dataset"), "tfcyclegan.synthetic"),
    "import_generator": "tfcyclegan.torch_import",
    **dict.fromkeys(("DataSpec", "load_run_model", "train"), "tfcyclegan.training"),
    **dict.fromkeys(("translate_files", "translate_tiled"), "tfcyclegan.translate"),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    return _lazy.lazy_attribute(__name__, _EXPORTS, name)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


_lazy.register_keras_classes_with_keras()
