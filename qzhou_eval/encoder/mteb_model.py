"""The mteb 2.x model object: routes each task and prompt type to the QZhou prefix, then encodes.

Routing (the reference scripts' rule): a query always gets its task's instruction; a document, or
an input mteb marks with no prompt type (STS, classification, clustering, ...), gets it only when
the task is on the document-side list. ``use_instruction=False`` turns every prefix off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta
from mteb.types import PromptType

from qzhou_eval.encoder.embedder import Encoder
from qzhou_eval.encoder.readability import (
    Readability,
    check_collapse,
    embedding_collapsed,
    sample_distinct,
    token_counts,
)
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.instructions.registry import InstructionSet, route_prefix
from qzhou_eval.record.readability_limits import ReadabilityLimits

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)


class QZhouMtebModel(AbsEncoder):
    """mteb ``EncoderProtocol`` implementation around an :class:`Encoder`.

    Example:
        >>> model = QZhouMtebModel(load_encoder(path), load_benchmark_instructions("MTEB(eng, v2)"))  # doctest: +SKIP
        >>> mteb.evaluate(model, tasks=[task])  # doctest: +SKIP
    """

    def __init__(
        self,
        encoder: Encoder,
        instructions: InstructionSet | None,
        *,
        use_instruction: bool = True,
        model_name: str | None = None,
        revision: str | None = None,
        readability_limits: ReadabilityLimits | None = None,
    ) -> None:
        if use_instruction and instructions is None:
            raise InvalidOptionError("use_instruction=True needs instructions (an InstructionSet)")
        self.model = encoder
        self.instructions = instructions
        self.use_instruction = use_instruction
        self.mteb_model_meta = self._model_meta(model_name or encoder.source.default_model_name, revision)
        self.readability_limits = readability_limits or ReadabilityLimits()
        self.readability: dict[str, Readability] = {}  # per task, over all its encode calls (the runner reads it)

    def _model_meta(self, name: str, revision: str | None) -> ModelMeta:
        encoder = self.model
        n_params = encoder.n_parameters
        return ModelMeta(
            loader=None,
            name=name,
            revision=revision or encoder.source.fingerprint(),
            release_date=None,
            languages=None,
            n_parameters=n_params,
            memory_usage_mb=None,
            max_tokens=encoder.options.max_length,
            embed_dim=encoder.embedding_dim,
            license=None,
            open_weights=None,
            public_training_code=None,
            public_training_data=None,
            framework=["PyTorch"],
            similarity_fn_name="cosine",
            use_instructions=self.use_instruction,
            training_datasets=None,
        )

    def prefix_for(self, task_name: str, prompt_type: PromptType | str | None) -> str:
        """The prefix this model applies to ``task_name`` inputs of ``prompt_type``."""
        return route_prefix(self.instructions, task_name, prompt_type, self.use_instruction)

    def encode(
        self,
        inputs: DataLoader,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        prefix = self.prefix_for(task_metadata.name, prompt_type)
        logger.debug("%s/%s %s: %d texts, prefix %r", task_metadata.name, hf_subset, prompt_type, len(texts), prefix)
        # mteb's show_progress_bar=False turns the bar off; otherwise it follows the log level.
        show = None if kwargs.get("show_progress_bar", True) else False
        side = getattr(prompt_type, "value", prompt_type) or "text"
        name = task_metadata.name
        sampled_rows, call = self._probe_tokens(name, texts, prefix, f"{name}/{hf_subset}/{hf_split}/{side}")
        vectors = self.model.encode(texts, prefix=prefix, show_progress=show, progress_desc=f"{name} {side}")
        call.embedding_collapsed = embedding_collapsed(vectors[sampled_rows])
        check_collapse(name, call.embedding_collapse_share, "embedding", call, self.readability_limits)
        self.readability.setdefault(name, Readability()).add(call)
        return vectors

    def _probe_tokens(self, task: str, texts: list[str], prefix: str, seed: str) -> tuple[list[int], Readability]:
        """Tokenise a sample of the call's distinct inputs exactly as encoding will; stop on a total collapse."""
        inputs = self.model.format_inputs(texts, prefix)
        rows = sample_distinct(inputs, seed)
        sampled = [inputs[r] for r in rows]
        if self.model.tokenizer is None:  # a served model without local files: only the embedding side is checked
            return rows, Readability(len(sampled))
        with_unknown, pieces, unknown, collapsed = token_counts(
            self.model.tokenizer, sampled, self.model.options.max_length
        )
        call = Readability(len(sampled), with_unknown, pieces, unknown, collapsed)
        check_collapse(task, call.token_collapse_share, "token sequence", call, self.readability_limits)
        return rows, call
