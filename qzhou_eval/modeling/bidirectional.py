"""Full (bidirectional) attention over the non-pad tokens for plain Qwen2/Qwen3 decoders.

QZhou-Embedding ships this as custom model code; here it is applied to an unmodified checkpoint
in memory, with transformers' own switch: ``config.is_causal = False`` makes ``create_causal_mask``
build a padding-only (bidirectional) mask. That alone is not enough: when a batch has no padding
the mask is dropped and sdpa falls back to each attention module's ``is_causal`` flag, so the
modules are made non-causal too.
"""

from __future__ import annotations

import logging

from torch import nn

from qzhou_eval.errors import InvalidOptionError

logger = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("qwen2", "qwen3")


def enable_bidirectional_attention(model: nn.Module) -> int:
    """Make a Qwen2/Qwen3 decoder attend bidirectionally; returns the number of attention modules changed.

    Raises:
        InvalidOptionError: for architectures other than Qwen2/Qwen3.

    Example:
        >>> enable_bidirectional_attention(qwen2_model)  # doctest: +SKIP
        24
    """
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InvalidOptionError(
            f"bidirectional=True supports model types {list(SUPPORTED_MODEL_TYPES)}, got {model_type!r}; "
            "use bidirectional=None to keep the checkpoint's own attention"
        )
    config.is_causal = False
    changed = 0
    for module in model.modules():
        if module is not model and hasattr(module, "is_causal") and isinstance(module.is_causal, bool):
            module.is_causal = False
            changed += 1
    if changed == 0:
        raise InvalidOptionError(
            f"found no attention module with an is_causal flag in {type(model).__name__}; "
            "this transformers version cannot run it bidirectionally"
        )
    logger.info("bidirectional attention enabled on %d attention modules", changed)
    return changed
