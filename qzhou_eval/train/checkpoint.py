"""Write the trained model as a sentence-transformers folder that ``load_encoder`` and the runners read."""

from __future__ import annotations

import json
from pathlib import Path

from qzhou_eval.modeling.checkpoint_info import read_checkpoint
from qzhou_eval.modeling.source import resolve_source
from qzhou_eval.modeling.st_layout import pooling_config
from qzhou_eval.train.config import TrainConfig


def evaluation_max_length(config: TrainConfig) -> int:
    """The ``max_seq_length`` the trained folder declares: the base model's, else the passage length.

    Training truncates for speed; evaluation should see what the base model was evaluated with. Writing
    the training length instead made a MiniLM fine-tuned at 128 tokens evaluate SciFact at 128 instead of
    256 and lose about 2 nDCG@10 to truncation alone.
    """
    declared = read_checkpoint(resolve_source(config.model)).declared_options().get("max_length")
    return int(declared.value) if declared else config.passage_max_length


def save_embedding_checkpoint(
    model, out: str | Path, config: TrainConfig, instructions: dict[str, str] | None = None
) -> Path:
    """Backbone + tokenizer at the root, Pooling and Normalize modules, and the instruction each dataset trained
    with (``instructions``: dataset -> instruction; default the config's own)."""
    out = Path(out)
    encoder = model.encoder
    model.backbone.save_pretrained(out)
    encoder.tokenizer.save_pretrained(out)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if config.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "1_Pooling").mkdir(exist_ok=True)
    pooling = pooling_config(encoder.options.pooling, encoder.loaded.hidden_size)
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    if config.normalize:
        (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": evaluation_max_length(config), "do_lower_case": False}, indent=2)
    )
    st_config = {
        "similarity_fn_name": "cosine",
        "qzhou_eval": {
            "bidirectional": bool(config.bidirectional),
            "instructions": instructions
            if instructions is not None
            else {d.name: d.instruction for d in config.datasets if d.instruction},
        },
    }
    if config.matryoshka_dims:
        st_config["matryoshka_dims"] = list(config.matryoshka_dims)
    (out / "config_sentence_transformers.json").write_text(json.dumps(st_config, indent=2))
    return out
