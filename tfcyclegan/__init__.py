"""tfcyclegan: CycleGAN (Zhu et al. 2017) and pix2pix (Isola et al. 2017) for TensorFlow / Keras 3.

    import tfcyclegan
    model = tfcyclegan.CycleGAN.from_model_config(tfcyclegan.ModelConfig())
    model.compile()
    data = tfcyclegan.unpaired_dataset("horses/", "zebras/", tfcyclegan.DataConfig())
    model.fit(data.dataset, steps_per_epoch=data.steps_per_epoch, epochs=200)

    pairs = tfcyclegan.resolve_pairs(data="facades/", split="train")
    data = tfcyclegan.paired_dataset(pairs, tfcyclegan.DataConfig())
    model = tfcyclegan.Pix2Pix.from_model_config()   # the authors' pix2pix

Importing the package registers its Keras classes, so `keras.saving.load_model`
reloads saved models after `import tfcyclegan`.
"""

from tfcyclegan.callbacks import (
    Checkpointing,
    GracefulStop,
    SampleGrid,
    Throughput,
    sample_grid,
)
from tfcyclegan.config import Config, DataConfig, ModelConfig, TrainConfig
from tfcyclegan.data import (
    check_images,
    list_images,
    load_image,
    paired_dataset,
    resolve_domains,
    resolve_pairs,
    unpaired_dataset,
)
from tfcyclegan.layers import (
    InstanceNormalization,
    ReflectionPadding2D,
    ResidualBlock,
)
from tfcyclegan.losses import AdversarialLoss
from tfcyclegan.models import CycleGAN, Pix2Pix
from tfcyclegan.models.base import TorchAdam
from tfcyclegan.networks import (
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from tfcyclegan.pool import ImagePool
from tfcyclegan.schedules import LinearDecay
from tfcyclegan.synthetic import make_demo_dataset, make_paired_dataset
from tfcyclegan.torch_import import import_generator
from tfcyclegan.training import DataSpec, load_run_model, train
from tfcyclegan.translate import translate_files
from tfcyclegan.version import __version__
