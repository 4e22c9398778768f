"""One `keras.Model` per translation method, each trained by plain `fit`.

`cyclegan.CycleGAN` (unpaired), `cut.CUT` (unpaired, one generator: CUT and FastCUT),
`pix2pix.Pix2Pix` (paired), `distill.Distill` (a student generator learning a trained
teacher's outputs); `base` holds what
they share (the `TranslationModel` base class for metrics, batches and serialization, the
authors' Adam, optimizer groups, running a generator).
"""

from tfcyclegan.models.base import translate_with
from tfcyclegan.models.cut import CUT
from tfcyclegan.models.cyclegan import CycleGAN
from tfcyclegan.models.distill import Distill
from tfcyclegan.models.pix2pix import Pix2Pix
