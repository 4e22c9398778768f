"""tfcyclegan: CycleGAN for TensorFlow / Keras 3."""

__version__ = "0.1.0"

from tfcyclegan.config import Config, DataConfig, ModelConfig, TrainConfig
from tfcyclegan.layers import InstanceNormalization, ReflectionPadding2D, ResidualBlock
from tfcyclegan.networks import (
    PatchDiscriminator,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
)
