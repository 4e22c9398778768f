"""One `keras.Model` per translation method, each trained by plain `fit`.

`cyclegan.CycleGAN` (unpaired), `cut.CUT` (unpaired, one generator: CUT and FastCUT),
`pix2pix.Pix2Pix` (paired), `distill.Distill` (a student generator learning a trained
teacher's outputs); `base` holds what
they share (the `TranslationModel` base class: compile-first guards, the end of `compile`,
metrics, batches, the D-then-G step, training checkpoints, serialization; the authors' Adam,
optimizer groups, running a generator). Each is a record of `tfcyclegan.methods`, which says
how a run builds and compiles it.
"""

from tfcyclegan.models.base import translate_with
from tfcyclegan.models.cut import CUT
from tfcyclegan.models.cyclegan import CycleGAN
from tfcyclegan.models.distill import Distill
from tfcyclegan.models.pix2pix import Pix2Pix
