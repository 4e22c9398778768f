"""tfcyclegan: CycleGAN (Zhu et al. 2017) for TensorFlow / Keras 3.

    import tfcyclegan
    model = tfcyclegan.CycleGAN.from_model_config(tfcyclegan.ModelConfig())
    model.compile()
    data = tfcyclegan.unpaired_dataset("horses/", "zebras/", tfcyclegan.DataConfig())
    model.fit(data.dataset, steps_per_epoch=data.steps_per_epoch, epochs=200)

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
    resolve_domains,
    unpaired_dataset,
)
from tfcyclegan.layers import (
    InstanceNormalization,
    ReflectionPadding2D,
    ResidualBlock,
)
from tfcyclegan.losses import AdversarialLoss
from tfcyclegan.models import CycleGAN
from tfcyclegan.networks import (
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
from tfcyclegan.pool import ImagePool
from tfcyclegan.schedules import LinearDecay
from tfcyclegan.synthetic import make_demo_dataset
from tfcyclegan.torch_import import import_generator
from tfcyclegan.training import DataSpec, load_run_model, train
from tfcyclegan.translate import translate_files
from tfcyclegan.version import __version__
