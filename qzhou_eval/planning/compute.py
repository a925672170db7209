"""FLOPs of an embedding forward pass, from the model's shape, and the peak of the GPU that runs it.

The shape comes from counting the weights of a model built on torch's ``meta`` device from the checkpoint's
``config.json`` (or a preset's published ``architecture`` when the weights are elsewhere), so no table of
architectures is kept here. A forward pass costs ``2 * matmul_params`` FLOPs per token plus, per text of
``L`` tokens, ``4 * layers * attention_width * L**2`` for the attention products (counted in full, as MFU
conventions do, whether the mask is causal or not). Embedding tables cost no FLOPs; there is no LM head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qzhou_eval.errors import InvalidOptionError

# Dense bf16 tensor-core peaks (no sparsity) from the vendors' data sheets, FLOP/s.
GPU_PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,  # SXM; the PCIe card is 756e12 (name it H100-PCIE)
    "H100-PCIE": 756e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
}
DEFAULT_MFU = 0.35  # a typical share of peak for bf16 encoder inference with sdpa at these lengths


@dataclass(frozen=True)
class ModelShape:
    """What a forward pass costs per token and per token pair, and how wide its stored vector is."""

    matmul_params: int
    layers: int
    attention_width: int  # query heads x head dim
    output_dim: int
    source: str

    def flops(self, tokens: float, squared_lengths: float) -> float:
        """FLOPs of forward passes over ``tokens`` tokens whose per-text lengths squared sum to ``squared_lengths``."""
        return 2.0 * self.matmul_params * tokens + 4.0 * self.layers * self.attention_width * squared_lengths


def model_shape(config: dict[str, Any], dense: list[tuple[int, int]], dim: int | None, source: str) -> ModelShape:
    """Count the Linear weights of the transformer ``config`` describes (built on the meta device: no memory).

    Raises:
        InvalidOptionError: transformers does not know the config's ``model_type``.
    """
    import torch
    from transformers import AutoConfig, AutoModel

    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "auto_map")}
    try:
        cfg = AutoConfig.for_model(config["model_type"], **fields)
    except (KeyError, ValueError) as exc:
        raise InvalidOptionError(
            f"{source}: transformers cannot build a config for model_type {config.get('model_type')!r} ({exc}); "
            "plan needs a standard transformers architecture"
        ) from None
    with torch.device("meta"):
        model = AutoModel.from_config(cfg)
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    matmul += sum(i * o for i, o in dense)
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    width = dim or (dense[-1][1] if dense else cfg.hidden_size)
    return ModelShape(int(matmul), int(cfg.num_hidden_layers), int(heads * head_dim), int(width), source)


@dataclass(frozen=True)
class Throughput:
    """How fast the run will go: a GPU model at an MFU, or tokens per second measured (padding included)."""

    label: str
    peak_flops: float | None = None
    mfu: float = DEFAULT_MFU
    tokens_per_s: float | None = None

    def seconds(self, flops: float, padded_tokens: float, gpus: int) -> float:
        if self.tokens_per_s is not None:
            return padded_tokens / (self.tokens_per_s * gpus)
        return flops / (self.peak_flops * self.mfu * gpus)

    def describe(self) -> str:
        if self.tokens_per_s is not None:
            return f"{self.label}: {self.tokens_per_s:,.0f} tokens/s measured"
        return f"{self.label}: {self.peak_flops / 1e12:,.0f} TFLOP/s bf16 peak at {self.mfu:.0%} MFU"


def parse_device(value: str, mfu: float) -> Throughput:
    """``--device``: a GPU model (H100, A100, ...) or a measured throughput (``2500`` or ``2500tok/s``).

    Raises:
        InvalidOptionError: for anything else, listing the GPU models known.
    """
    text = value.strip()
    number = text.lower().removesuffix("tok/s").removesuffix("tokens/s").strip()
    try:
        rate = float(number)
    except ValueError:
        rate = None
    if rate is not None:
        if rate <= 0:
            raise InvalidOptionError(f"--device {value}: a throughput must be positive tokens per second")
        return Throughput("measured", tokens_per_s=rate)
    if not 0 < mfu <= 1:
        raise InvalidOptionError(f"--mfu {mfu}: a share of peak, in (0, 1]")
    words = text.upper().removeprefix("NVIDIA").strip().replace(" ", "-").split("-")  # "NVIDIA H100 80GB HBM3"
    key = next((k for k in ("-".join(words[:2]), words[0]) if k in GPU_PEAK_BF16), None)
    if key is None:
        raise InvalidOptionError(
            f"--device {value!r} is neither a known GPU ({', '.join(GPU_PEAK_BF16)}) nor a throughput in tokens/s; "
            "name one of those, or pass the tokens/s a short run measured (e.g. --device 12000tok/s)"
        )
    return Throughput(key, peak_flops=GPU_PEAK_BF16[key], mfu=mfu)
