"""The course's models, built from ``tinymm.nn`` layers.

    ImageEncoder, SplitImageEncoder, TextEncoder, BagOfWordsTextEncoder   the two towers (encoders.py)
    DualEncoder                                          CLIP: both towers + a learnable scale (clip.py)
    FusionHead                                           scores an (image, caption) pair (fusion.py)
    CaptionDecoder, ImageDecoder, EmbeddingPrior         back from an embedding (decoders.py)
"""
from .encoders import ImageEncoder, SplitImageEncoder, TextEncoder, BagOfWordsTextEncoder, model_input
from .clip import DualEncoder, LOGIT_SCALE_INIT, LOGIT_SCALE_MAX
from .fusion import FusionHead
from .decoders import CaptionDecoder, ImageDecoder, EmbeddingPrior
