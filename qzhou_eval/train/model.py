"""The trainable embedder: the same loading, attention changes and pooling as evaluation (one code path)."""

from __future__ import annotations

import torch
from torch import nn

from qzhou_eval.api import load_encoder
from qzhou_eval.encoder.embedder import Encoder
from qzhou_eval.modeling.forward import pooled_states


class EmbeddingModel(nn.Module):
    """Wraps an :class:`Encoder`'s backbone so transformers' Trainer can optimise it.

    ``forward(features)`` returns float32 pooled embeddings (unnormalised; the losses use cosine).
    """

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.backbone = encoder.model  # registered: its parameters are trained and saved

    @classmethod
    def load(
        cls,
        path: str,
        *,
        pooling: str,
        bidirectional: bool | None,
        max_length: int,
        trust_remote_code: bool,
        dtype: str | None = "float32",
    ) -> EmbeddingModel:
        encoder = load_encoder(
            path,
            pooling=pooling,
            bidirectional=bidirectional,
            max_length=max_length,
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            normalize=False,
            device="cpu",
        )  # the Trainer places it
        return cls(encoder)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = pooled_states(
            self.encoder.loaded, features, self.encoder.options.pooling, self.encoder.token_prepending
        )
        return pooled.float()
