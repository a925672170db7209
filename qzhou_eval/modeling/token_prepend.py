"""Token Prepending (Fu et al., ACL 2025) as forward pre-hooks on decoder layers.

At the input of each chosen decoder layer, the hidden state at the placeholder position is replaced
by the previous layer's output at the last real token, so earlier tokens can attend to a sentence
summary under causal attention. No parameters are added; layers outside the set run unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from qzhou_eval.errors import InvalidOptionError, ModelFormatError
from qzhou_eval.modeling.pooling import last_token_index


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layer list of a transformers base model or a *ForCausalLM wrapper."""
    for candidate in (model, getattr(model, "model", None)):
        layers = getattr(candidate, "layers", None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ModelFormatError(f"{type(model).__name__} has no decoder `layers` list; Token Prepending needs one")


def placeholder_token_id(tokenizer, placeholder: str) -> int:
    """The single-token id of ``placeholder``, or an error naming the fix."""
    ids = tokenizer(placeholder, add_special_tokens=False)["input_ids"]
    token_id = tokenizer.convert_tokens_to_ids(placeholder)
    if len(ids) != 1 or token_id is None or token_id == tokenizer.unk_token_id:
        raise InvalidOptionError(
            f"token_prepending=True needs the placeholder {placeholder!r} to be a single token of the "
            f"tokenizer, but it tokenises to {len(ids)} pieces; use a checkpoint whose tokenizer has it "
            "(Qwen2/Qwen3) or turn token_prepending off"
        )
    return int(ids[0])


class TokenPrepending:
    """Hooks that copy the last token's state into the placeholder slot at chosen layer inputs.

    Use :meth:`batch` around each forward so the hooks know where the placeholder and the last
    real token of every row are.
    """

    def __init__(self, model: nn.Module, placeholder_id: int, layer_indices: Sequence[int]) -> None:
        layers = decoder_layers(model)
        bad = [i for i in layer_indices if not 0 <= i < len(layers)]
        if bad:
            raise InvalidOptionError(
                f"Token Prepending layers {bad} do not exist; the model has layers 0..{len(layers) - 1}"
            )
        self.placeholder_id = placeholder_id
        self.layer_indices = tuple(layer_indices)
        self._rows: torch.Tensor | None = None
        self._placeholder_pos: torch.Tensor | None = None
        self._last_pos: torch.Tensor | None = None
        self._handles = [layers[i].register_forward_pre_hook(self._hook, with_kwargs=True) for i in self.layer_indices]

    def remove(self) -> None:
        """Detach the hooks (the model runs unchanged afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _BatchScope:
        """Context for one forward pass over ``input_ids``."""
        is_placeholder = (input_ids == self.placeholder_id) & attention_mask.bool()
        missing = (~is_placeholder.any(dim=1)).nonzero().flatten().tolist()
        if missing:
            raise InvalidOptionError(
                f"rows {missing} of the batch hold no Token Prepending placeholder; the prompt template "
                "must contain it and max_length must keep it (it sits before the text)"
            )
        self._rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        self._placeholder_pos = is_placeholder.long().argmax(dim=1)
        self._last_pos = last_token_index(attention_mask)
        return _BatchScope(self)

    def _clear(self) -> None:
        self._rows = self._placeholder_pos = self._last_pos = None

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict):
        if self._rows is None:
            raise RuntimeError("Token Prepending hook ran outside TokenPrepending.batch(...)")
        from_kwargs = "hidden_states" in kwargs
        hidden = kwargs["hidden_states"] if from_kwargs else args[0]
        last_states = hidden[self._rows, self._last_pos]
        hidden = hidden.clone()
        hidden[self._rows, self._placeholder_pos] = last_states
        if from_kwargs:
            return args, {**kwargs, "hidden_states": hidden}
        return (hidden, *args[1:]), kwargs


class _BatchScope:
    def __init__(self, owner: TokenPrepending) -> None:
        self._owner = owner

    def __enter__(self) -> TokenPrepending:
        return self._owner

    def __exit__(self, *exc) -> None:
        self._owner._clear()
