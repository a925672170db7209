"""One forward pass from tokenised, left-padded inputs to pooled states: shared by evaluation and training,
so the two cannot drift."""

from __future__ import annotations

import torch

from qzhou_eval.modeling.loading import LoadedModel
from qzhou_eval.modeling.pooling import Pooling, pool
from qzhou_eval.modeling.token_prepend import TokenPrepending


def pooled_states(
    loaded: LoadedModel,
    batch: dict[str, torch.Tensor],
    pooling: Pooling,
    token_prepending: TokenPrepending | None = None,
) -> torch.Tensor:
    """Run the backbone on ``batch`` (input_ids, attention_mask[, token_type_ids]) and pool.

    Left padding would shift a learned position table, so BERT-style models get position ids that
    start at 0 on each row's first real token. Returns [batch, hidden] in the model's dtype.
    """
    mask = batch["attention_mask"]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": mask}
    if loaded.accepts_token_type_ids and "token_type_ids" in batch:
        inputs["token_type_ids"] = batch["token_type_ids"]
    if loaded.absolute_positions:
        inputs["position_ids"] = (mask.long().cumsum(dim=-1) - 1).clamp(min=0)
    if token_prepending is not None:
        with token_prepending.batch(inputs["input_ids"], mask):
            output = loaded.model(**inputs)
    else:
        output = loaded.model(**inputs)
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
    return pool(hidden, mask, pooling)
