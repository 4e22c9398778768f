"""One `keras.Model` per translation method, each trained by plain `fit`.

`cyclegan.CycleGAN` (unpaired); `base` holds what they share.
"""

from tfcyclegan.models.base import translate_with
from tfcyclegan.models.cyclegan import CycleGAN
