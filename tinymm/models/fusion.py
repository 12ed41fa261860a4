"""A fusion head: score one (image, caption) pair with a small MLP.

The dual encoder compares an image and a caption only through one dot product. A fusion
head sees both embeddings at once — concatenated, together with their element-wise product
— and can learn interactions a dot product cannot express. It is what lesson 14 trains with
hard negatives (captions that differ from the truth in one attribute).
"""
import tinymm.functional as F
from .. import nn


class FusionHead(nn.Module):
    """(N, D) image embeddings, (N, D) text embeddings -> (N,) match logits."""

    def __init__(self, embed_dim=64, hidden=128):
        super().__init__()
        self.embed_dim = embed_dim
        self.mlp = nn.Sequential(nn.Linear(3 * embed_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, image_emb, text_emb):
        if image_emb.ndim != 2 or image_emb.shape != text_emb.shape or image_emb.shape[-1] != self.embed_dim:
            raise ValueError(f"FusionHead: expected two (N, {self.embed_dim}) embeddings, "
                             f"got {image_emb.shape} and {text_emb.shape}")
        features = F.concatenate([image_emb, text_emb, image_emb * text_emb], axis=-1)
        return self.mlp(features).reshape(-1)
