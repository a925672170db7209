"""vLLM as the encoder's engine: same formatting, dedupe, cache and output head as the HF backend.

The harness tokenises (same truncation as the HF backend) and hands vLLM token ids; vLLM runs the
transformer, pools (MEAN / LAST / CLS) and applies a sentence-transformers Dense head itself, in the
model's dtype (``head_dtype="model"``, as the reference runs every module in bf16). The harness then
slices to the MRL dimension and normalises in the protocol's order (:func:`finish`). Bidirectional
Qwen2/Qwen3 uses vLLM's own switch (``hf_overrides={"is_causal": False}``), not a fork of its model
code. Token Prepending needs hooks inside the decoder layers, which vLLM does not offer: refused.

``vllm`` is imported inside functions only: a harness without it works, and asking for it names the
install command.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from qzhou_eval._ranks import world_size
from qzhou_eval.encoder.batching import tokenize
from qzhou_eval.encoder.pass_base import BackendDefaults, BuiltBackend, CallContext, check_finite, finish
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.loading import LoadedModel, declared_shape, load_tokenizer
from qzhou_eval.modeling.mrl import check_dim
from qzhou_eval.modeling.pooling import Pooling
from qzhou_eval.options import Batching
from qzhou_eval.resolution.backends import VLLM_INSTALL_HINT, Capabilities
from qzhou_eval.resolution.spec import RunSpec

logger = logging.getLogger(__name__)

_VLLM_POOLING = {Pooling.MEAN: "MEAN", Pooling.LAST: "LAST", Pooling.CLS: "CLS"}
# Fraction of memory vLLM may reserve: of the GPU on CUDA, of the NUMA node's RAM on the CPU build.
_MEMORY_FRACTION = {"cuda": 0.9, "cpu": 0.1}
_FILLER_TOKEN_ID = 0  # the one-token prompt an empty share runs (its result is dropped)


def import_vllm():
    """The vllm module, or an error with the install command."""
    try:
        import vllm
    except ImportError as exc:
        raise InvalidOptionError(
            f"--backend vllm needs vLLM, which is not installed ({exc}); {VLLM_INSTALL_HINT}"
        ) from None
    return vllm


class VllmEngine:
    """One ``vllm.LLM`` in pooling mode, configured from the resolved options."""

    def __init__(
        self,
        model_path: str,
        *,
        pooling: Pooling,
        bidirectional: bool | None,
        dtype: torch.dtype,
        max_length: int,
        max_tokens_per_batch: int,
        max_rows: int,
        trust_remote_code: bool,
        revision: str | None = None,
        projects: bool = False,
        data_parallel_size: int = 1,
    ) -> None:
        vllm = import_vllm()
        from vllm.config import PoolerConfig

        overrides = {"head_dtype": "model"}
        if bidirectional:
            overrides["is_causal"] = False
        kind = "cuda" if torch.cuda.is_available() else "cpu"
        fraction = float(os.environ.get("QZHOU_EVAL_VLLM_MEMORY_FRACTION", _MEMORY_FRACTION[kind]))
        self.llm = vllm.LLM(
            model=model_path,
            revision=revision,
            runner="pooling",
            dtype=str(dtype).removeprefix("torch."),
            hf_overrides=overrides,
            pooler_config=PoolerConfig(pooling_type=_VLLM_POOLING[pooling], use_activation=False),
            max_model_len=max_length,
            max_num_batched_tokens=max(max_tokens_per_batch, max_length),
            max_num_seqs=max_rows,
            trust_remote_code=trust_remote_code,
            gpu_memory_utilization=fraction,
            # CUDA graphs and compilation pay off on a GPU; on the CPU build they cost minutes of start-up.
            enforce_eager=kind == "cpu",
            seed=0,
            # Under torchrun: vLLM's own data parallelism, one engine per rank in the launcher's process group.
            # The harness deals each rank its share (vLLM balances nothing in this mode); the engines step
            # together until every rank is done.
            **(
                {"data_parallel_size": data_parallel_size, "distributed_executor_backend": "external_launcher"}
                if data_parallel_size > 1
                else {}
            ),
        )
        self.dtype = dtype
        self.projects = projects  # vLLM applies the checkpoint's sentence-transformers Dense head itself

    def pooled(self, token_ids: list[list[int]], progress: bool) -> torch.Tensor:
        """Pooled (and Dense-projected) states in the model's dtype, one row per input.

        An empty share still runs one throw-away prompt: vLLM refuses an empty list, and under data
        parallelism every rank's engine must step with the others.
        """
        prompts = [{"prompt_token_ids": ids} for ids in token_ids] or [{"prompt_token_ids": [_FILLER_TOKEN_ID]}]
        outputs = self.llm.embed(prompts, use_tqdm=progress)
        rows = np.asarray([o.outputs.embedding for o in outputs], dtype=np.float32)[: len(token_ids)]
        return torch.from_numpy(rows).to(self.dtype)


def build(spec: RunSpec) -> BuiltBackend:
    """The vLLM engine plus the harness's tokenizer and head; options resolved exactly as for the HF backend."""
    info = spec.info
    source, layout = info.source, info.layout
    shape = declared_shape(info, spec.trust_remote_code)
    check_dim(spec.dim, shape.width, spec["mrl_dims"])
    engine = VllmEngine(
        str(source.local_path) if source.is_local else source.name_or_path,
        pooling=spec.pooling,
        bidirectional=spec.bidirectional,
        dtype=getattr(torch, spec.dtype),
        max_length=spec.max_length,
        max_tokens_per_batch=spec.batching.max_tokens,
        max_rows=spec.batching.max_rows,
        trust_remote_code=spec.trust_remote_code,
        revision=source.revision,
        projects=bool(layout and layout.dense_out_features),
        data_parallel_size=world_size(),
    )
    loaded = LoadedModel(
        model=None,
        tokenizer=load_tokenizer(source, layout, spec.trust_remote_code),
        width=shape.width,
        hidden_size=shape.hidden_size,
        max_positions=shape.max_positions,
    )
    logger.info("loaded %s in vLLM (%s, %s)", source.name_or_path, spec.dtype, spec.device_type)
    return BuiltBackend(loaded, VllmBackend(spec.backend, engine, spec.dim, spec.normalize), spec.device_type)


class VllmBackend(BackendDefaults):
    """The vLLM engine behind the harness's tokenizer and head: vLLM schedules the batches itself."""

    def __init__(self, capabilities: Capabilities, engine: VllmEngine, dim: int | None, normalize: bool) -> None:
        self.capabilities = capabilities
        self.engine = engine
        self.dim = dim
        self.normalize = normalize

    def embed(self, texts: list[str], call: CallContext, batching: Batching) -> np.ndarray:
        tokens = tokenize(call.tokenizer, texts, call.max_length)
        call.warn_truncated(tokens.truncated, len(texts))
        pooled = self.engine.pooled(tokens.input_ids, progress=call.progress is not None)
        computed = sum(len(ids) for ids in tokens.input_ids)  # vLLM packs sequences: no padding
        call.stats.tokens += computed
        call.stats.padded_tokens += computed
        out = finish(pooled, self.engine.projects, self.dim, self.normalize).numpy()
        check_finite(out, lambda i: call.first_row[texts[i]])
        call.keep(texts, out)
        return out
