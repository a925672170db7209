"""Tiny checkpoints laid out like the two published models: the model cards' flags alone must give
exactly what the explicit preset gives, with no checkpoint code run; the bf16 pooling and Dense
arithmetic must equal a plain restatement of the reference operations, bit for bit on CPU."""

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from qzhou_eval import load_encoder
from qzhou_eval.cli.main import main
from qzhou_eval.encoder.pass_base import project
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.checkpoint_info import read_checkpoint
from qzhou_eval.modeling.pooling import Pooling, pool
from qzhou_eval.modeling.source import resolve_source
from qzhou_eval.options import CHECKPOINT_CODE, resolve_options
from qzhou_eval.presets import recognise, select_preset

TEXTS = ["what is photosynthesis?", "", "A man is playing a guitar on the stage tonight.", "short"]


def _info(path):
    return read_checkpoint(resolve_source(str(path)))


def test_both_layouts_are_recognised_and_plain_checkpoints_are_not(
    tiny_qzhou_embedding, tiny_qzhou_zh, tiny_qwen2, minilm_path
):
    assert recognise(_info(tiny_qzhou_embedding)).preset.name == "qzhou-embedding"
    zh = recognise(_info(tiny_qzhou_zh))
    assert zh.preset.name == "qzhou-embedding-zh" and "dense_out_features=1792" in zh.how
    assert recognise(_info(tiny_qwen2)) is None, "a plain Qwen2 must not be guessed"
    assert recognise(_info(minilm_path)) is None
    assert select_preset("none", _info(tiny_qzhou_embedding)) is None, "--preset none turns recognition off"


def test_hub_cache_snapshot_is_recognised_by_its_hub_id(tmp_path, tiny_qwen2):
    import shutil

    snapshot = tmp_path / "models--Kingsoft-LLM--QZhou-Embedding" / "snapshots" / "f1e6c03e"
    shutil.copytree(tiny_qwen2, snapshot)
    choice = recognise(_info(snapshot))
    assert (
        choice.preset.name == "qzhou-embedding" and choice.how == "recognised from hub id Kingsoft-LLM/QZhou-Embedding"
    )


def test_qzhou_embedding_card_flags_equal_the_explicit_preset(tiny_qzhou_embedding, caplog):
    with caplog.at_level(logging.INFO, logger="qzhou_eval"):
        card = load_encoder(str(tiny_qzhou_embedding), pooling="mean", normalize=True)  # the model card's flags
    assert any("is Kingsoft-LLM/QZhou-Embedding" in r.message for r in caplog.records), "recognition must be logged"
    assert any("does not run" in r.message and "modeling_qzhou.QZhouModel" in r.message for r in caplog.records)
    explicit = load_encoder(str(tiny_qzhou_embedding), preset="qzhou-embedding")
    assert card.resolution.source("bidirectional") == "preset qzhou-embedding"
    assert card.options.bidirectional is True and card.options.max_length == 1024
    ours, expected = card.encode(TEXTS), explicit.encode(TEXTS)
    assert np.array_equal(ours, expected), "the card's command must embed exactly as the explicit preset"
    causal = load_encoder(str(tiny_qzhou_embedding), preset="none", trust_remote_code=False).encode(TEXTS)
    assert np.abs(causal - ours).max() > 1e-3, "without the preset the model runs causal: recognition did something"


def test_qzhou_embedding_zh_card_flags_equal_the_explicit_preset(tiny_qzhou_zh):
    card = load_encoder(str(tiny_qzhou_zh), normalize=True, dim=1792)  # the Zh model card's flags
    explicit = load_encoder(str(tiny_qzhou_zh), preset="qzhou-embedding-zh")
    assert card.options.token_prepending and card.options.prompt_template.startswith("This sentence: <|im_start|>")
    assert card.options.token_prepending_layers == (1, 2, 3, 4, 5, 6, 7)
    ours = card.encode(TEXTS, instruction="Retrieve semantically similar text")
    assert np.array_equal(ours, explicit.encode(TEXTS, instruction="Retrieve semantically similar text"))
    assert ours.shape == (4, 1792)
    plain = load_encoder(str(tiny_qzhou_zh), preset="none", trust_remote_code=False, normalize=True, dim=1792)
    assert np.abs(plain.encode(TEXTS, instruction="Retrieve semantically similar text") - ours).max() > 1e-3


def test_explicit_option_beats_the_recognised_preset_logged_once(tiny_qzhou_embedding, caplog):
    with caplog.at_level(logging.WARNING, logger="qzhou_eval"):
        encoder = load_encoder(str(tiny_qzhou_embedding), pooling="last", max_length=64)
    assert encoder.options.pooling is Pooling.LAST and encoder.options.max_length == 64
    overrides = [r.message for r in caplog.records if "overrides preset qzhou-embedding" in r.message]
    assert overrides == [
        "explicit pooling='last' overrides preset qzhou-embedding's 'mean'",
        "explicit max_length=64 overrides preset qzhou-embedding's 1024",
    ]


def test_trust_remote_code_leaves_the_published_tricks_to_the_checkpoint(tiny_qzhou_zh, tiny_qzhou_embedding):
    zh = resolve_options({"trust_remote_code": True}, recognise(_info(tiny_qzhou_zh)), _info(tiny_qzhou_zh))
    assert zh["token_prepending"] is False and zh.source("token_prepending") == CHECKPOINT_CODE
    assert zh["prompt_template"].startswith("This sentence:"), "the template is the embedder's, not the model's"
    emb = resolve_options(
        {"trust_remote_code": True}, recognise(_info(tiny_qzhou_embedding)), _info(tiny_qzhou_embedding)
    )
    assert emb["bidirectional"] is None and emb.source("bidirectional") == CHECKPOINT_CODE


def test_unrecognised_custom_code_needs_a_decision(tmp_path, tiny_qwen2, caplog):
    import shutil

    folder = tmp_path / "someone-elses-model"
    shutil.copytree(tiny_qwen2, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text('raise RuntimeError("ran")\n')
    with pytest.raises(
        InvalidOptionError,
        match=r"declares custom model code \(modeling_custom.CustomModel\).*"
        r"--trust_remote_code true.*--trust_remote_code false",
    ):
        load_encoder(str(folder))
    with caplog.at_level(logging.WARNING, logger="qzhou_eval"):
        load_encoder(str(folder), trust_remote_code=False)
    assert any("not run (trust_remote_code=False)" in r.message for r in caplog.records)


def test_reference_mean_pooling_bit_for_bit_in_bf16():
    torch.manual_seed(0)
    hidden = torch.randn(3, 500, 64).to(torch.bfloat16)
    mask = torch.zeros(3, 500, dtype=torch.long)
    for row, n in enumerate((417, 500, 33)):
        mask[row, -n:] = 1  # left padding
    # embedder.py get_pooling(), restated: sum the last n states, divide by the 0-dim integer count.
    reference = torch.stack([hidden[i, -n:, :].sum(dim=0) / n for i, n in enumerate(mask.sum(dim=-1))], dim=0)
    ours = pool(hidden, mask, Pooling.MEAN)
    assert ours.dtype == torch.bfloat16 and torch.equal(ours, reference)
    promoted = hidden.masked_fill(~mask.bool().unsqueeze(-1), 0).sum(1) / mask.sum(1, keepdim=True)
    assert not torch.equal(promoted, reference), "a [batch, 1] count tensor rounds 417 to 416 in bf16"
    assert torch.equal(F.normalize(ours, p=2, dim=-1).float(), F.normalize(reference, p=2, dim=-1).float())


def test_reference_dense_head_bit_for_bit_in_bf16(tiny_qzhou_zh):
    encoder = load_encoder(str(tiny_qzhou_zh), dtype="bfloat16", preset="qzhou-embedding-zh")
    torch.manual_seed(1)
    pooled = torch.randn(6, 128).to(torch.bfloat16)
    # sentence-transformers with every module in bf16: Linear in bf16, then .float() for numpy.
    weights = load_file(str(tiny_qzhou_zh / "2_Dense" / "model.safetensors"))
    weight = next(v for k, v in weights.items() if k.endswith("weight")).to(torch.bfloat16)
    bias = next(v for k, v in weights.items() if k.endswith("bias")).to(torch.bfloat16)
    reference = F.linear(pooled, weight, bias).float()
    with torch.no_grad():
        assert torch.equal(project(pooled, encoder.loaded.dense), reference)
    # then embedder.py: sklearn normalize(embeddings[:, :dim]) in float32
    with torch.no_grad():
        head = encoder.backend.head(pooled)
    sliced = reference[:, :1792].numpy()
    expected = sliced / np.sqrt(np.einsum("ij,ij->i", sliced, sliced))[:, None]
    assert np.abs(head.numpy() - expected).max() < 1e-6


def test_card_command_run_records_preset_variant_and_sources(tiny_qzhou_embedding, shared_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--benchmark",
            "MTEB(eng, v2)",
            "--tasks",
            "STSBenchmark",
            "--data_dir",
            str(shared_dir / "mteb-data"),
            "--model_name_or_path",
            str(tiny_qzhou_embedding),
            "--pooling_mode",
            "mean",
            "--normalize",
            "true",
            "--use_instruction",
            "true",
            "--output_dir",
            str(out),
            "--batch_size",
            "64",
            "-q",
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "qzhou-run-MTEB-eng-v2.json").read_text())
    assert manifest["preset"]["name"] == "qzhou-embedding" and manifest["preset"]["how"].startswith("recognised")
    assert manifest["instructions"]["variant"] == "leaderboard-2025-08"
    resolved = manifest["resolved_options"]
    assert resolved["bidirectional"] == {"value": True, "source": "preset qzhou-embedding"}
    assert resolved["pooling"] == {"value": "mean", "source": "explicit"}
    assert resolved["max_length"] == {"value": 1024, "source": "preset qzhou-embedding"}


def test_instructions_command_follows_the_recognised_checkpoint(tiny_qzhou_embedding, capsys):
    assert (
        main(["instructions", "--benchmark", "MTEB(eng, v2)", "--model_name_or_path", str(tiny_qzhou_embedding)]) == 0
    )
    table = json.loads(capsys.readouterr().out)
    assert table["MedrxivClusteringS2S.v2"] == {"query_prefix": "", "document_prefix": ""}
