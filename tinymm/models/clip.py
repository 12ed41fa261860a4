"""The CLIP-style dual encoder: two towers that meet in one embedding space.

    I = normalise(image_encoder(images))     (N, D), each row of length 1
    T = normalise(text_encoder(tokens))      (N, D)
    logits_per_image = exp(s) · I Tᵀ          (N, N): row i scores image i against every caption
    logits_per_text  = logits_per_imageᵀ

s is the learnable log of the temperature's inverse. It starts at ln(1/0.07) ≈ 2.66 (CLIP's
choice), is used as exp(s) so the scale stays positive, and is clamped to [0, ln 100] after
every optimiser step so the logits cannot blow up.
"""
import math

import numpy as np

import tinymm.functional as F
from .. import backend, nn
from .encoders import ImageEncoder, TextEncoder

LOGIT_SCALE_INIT = math.log(1 / 0.07)
LOGIT_SCALE_MAX = math.log(100.0)


class DualEncoder(nn.Module):
    def __init__(self, image_encoder=None, text_encoder=None, vocab_size=None, embed_dim=64):
        super().__init__()
        if text_encoder is None:
            if vocab_size is None:
                raise ValueError("DualEncoder: give a text_encoder or the vocab_size to build one")
            text_encoder = TextEncoder(vocab_size, embed_dim=embed_dim)
        self.image_encoder = image_encoder if image_encoder is not None else ImageEncoder(embed_dim=embed_dim)
        self.text_encoder = text_encoder
        # a 0-d parameter, created where every other parameter is: on the default device
        s = np.array(LOGIT_SCALE_INIT, dtype=np.float32)
        self.logit_scale = nn.Parameter(backend.to_device(s, backend.get_default_device()))

    def encode_image(self, images):
        """(N, 3, 32, 32) -> (N, D) unit vectors."""
        return F.l2_normalize(self.image_encoder(images), axis=-1)

    def encode_text(self, tokens):
        """(N, L) token ids -> (N, D) unit vectors."""
        return F.l2_normalize(self.text_encoder(tokens), axis=-1)

    def forward(self, images, tokens):
        """-> (logits_per_image, logits_per_text), both (N, N)."""
        image_emb, text_emb = self.encode_image(images), self.encode_text(tokens)
        logits_per_image = self.logit_scale.exp() * (image_emb @ text_emb.T)
        return logits_per_image, logits_per_image.T

    def clamp_logit_scale(self):
        """Keep s in [0, ln 100] (call after every optimiser step)."""
        s = self.logit_scale.data
        s[...] = s.clip(0.0, LOGIT_SCALE_MAX)

    def parameter_groups(self, weight_decay):
        """Optimiser groups: weight decay on the weights, none on the logit scale."""
        others = [p for name, p in self.named_parameters() if name != "logit_scale"]
        return [{"params": others, "weight_decay": weight_decay},
                {"params": [self.logit_scale], "weight_decay": 0.0}]
