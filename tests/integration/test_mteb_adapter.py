"""The mteb model object feeds each side of each task the published prefix, and the CLI works end to end."""

import numpy as np
import pytest

from qzhou_eval import load_benchmark_instructions, load_encoder
from qzhou_eval.cli.main import main
from qzhou_eval.encoder.mteb_model import QZhouMtebModel


@pytest.fixture(scope="module")
def encoder(minilm_path):
    return load_encoder(minilm_path)


def _loader(texts):
    return [{"text": texts[:2]}, {"text": texts[2:]}]  # mteb hands a DataLoader of batches with a "text" column


@pytest.mark.parametrize(
    "task,prompt_type,instructed",
    [("SCIDOCS", "query", True), ("SCIDOCS", "document", False), ("ArguAna", "document", True), ("STS12", None, True)],
)
def test_adapter_applies_routed_prefix(encoder, task, prompt_type, instructed):
    import mteb
    from mteb.types import PromptType

    instructions = load_benchmark_instructions("MTEB(eng, v2)")
    model = QZhouMtebModel(encoder, instructions, model_name="test/minilm")
    texts = ["a cat sat", "dogs bark", "the sun is hot"]
    meta = mteb.get_task(task).metadata
    got = model.encode(
        _loader(texts),
        task_metadata=meta,
        hf_split="test",
        hf_subset="default",
        prompt_type=PromptType(prompt_type) if prompt_type else None,
    )
    prefix = f"Instruct: {instructions.tasks[task].instruction}\nQuery: " if instructed else ""
    assert np.abs(got - encoder.encode(texts, prefix=prefix)).max() <= 1e-6
    off = QZhouMtebModel(encoder, instructions, use_instruction=False, model_name="test/minilm")
    plain = off.encode(_loader(texts), task_metadata=meta, hf_split="test", hf_subset="default", prompt_type=None)
    assert np.abs(plain - encoder.encode(texts)).max() <= 1e-6


def test_model_meta(encoder):
    model = QZhouMtebModel(encoder, None, use_instruction=False)
    meta = model.mteb_model_meta
    assert meta.name == "local/model" and meta.embed_dim == 384 and meta.similarity_fn_name.value == "cosine"
    assert len(meta.revision) == 16, "a local checkpoint's revision is its weight fingerprint"


def test_bf16_on_cpu_runs_close_to_float32(tiny_qwen2, varied_texts):
    fp32 = load_encoder(str(tiny_qwen2), bidirectional=True).encode(varied_texts[:4])
    bf16 = load_encoder(str(tiny_qwen2), bidirectional=True, dtype="bfloat16").encode(varied_texts[:4])
    assert bf16.dtype == np.float32
    assert (fp32 * bf16).sum(1).min() > 0.99


def test_cli_encode_and_error_exit(minilm_path, capsys, tmp_path):
    out_file = tmp_path / "e.npy"
    assert main(["encode", "--model_name_or_path", minilm_path, "--save", str(out_file), "a cat", "a kitten"]) == 0
    assert "2 texts -> 384-dim embeddings" in capsys.readouterr().out
    assert np.load(out_file).shape == (2, 384)
    assert main(["encode", "--model_name_or_path", str(tmp_path / "missing"), "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
