"""Training end to end: a tiny bidirectional Qwen2 on a retrieval + NLI + classification mix (default run),
and the MiniLM CoSENT recipe with its evaluation lift, one and two processes (slow)."""

import collections
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qzhou_eval import load_encoder
from qzhou_eval.train.config import TrainConfig
from qzhou_eval.train.trainer import train

REPO = Path(__file__).resolve().parents[2]


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def mix_data(tmp_path_factory, shared_dir):
    out = tmp_path_factory.mktemp("mix")
    with gzip.open(shared_dir / "mteb-data" / "STSBenchmark" / "train.jsonl.gz", "rt") as fh:
        sts = [json.loads(line) for line in fh][:400]
    rng = random.Random(0)
    pool = [r["sentence2"] for r in sts]
    retrieval = [
        {"query": r["sentence1"], "positive": r["sentence2"], "negatives": rng.sample(pool, 2)}
        for r in sts
        if r["score"] >= 3.5
    ]
    nli = [{"text_a": r["sentence1"], "text_b": r["sentence2"], "score": r["score"]} for r in sts]
    with gzip.open(shared_dir / "mteb-data" / "Banking77Classification" / "train.jsonl.gz", "rt") as fh:
        bank = [json.loads(line) for line in fh]
    common = [lab for lab, _ in collections.Counter(r["label"] for r in bank).most_common(4)]
    cls = [
        {"text": r["text"], "label": r["label"]} for lab in common for r in [b for b in bank if b["label"] == lab][:30]
    ]
    return {
        "retrieval": _jsonl(out / "retr.jsonl", retrieval),
        "pair": _jsonl(out / "nli.jsonl", nli),
        "classification": _jsonl(out / "cls.jsonl", cls),
    }


def test_tiny_bidirectional_qwen_trains_on_a_grouped_mix(tiny_qwen2, mix_data, tmp_path):
    config = TrainConfig(
        model=str(tiny_qwen2),
        output_dir=str(tmp_path / "out"),
        stage=2,
        retrieval_share=0.5,
        alpha=0.5,
        datasets=[
            {"name": "retr", "path": mix_data["retrieval"], "kind": "retrieval", "instruction": "Find the paraphrase"},
            {
                "name": "nli",
                "path": mix_data["pair"],
                "kind": "pair",
                "instruction": "Retrieve semantically similar text",
            },
            {
                "name": "cls",
                "path": mix_data["classification"],
                "kind": "classification",
                "instruction": "Classify the intent",
            },
        ],
        batch_size=16,
        pair_batch_size=32,
        hard_negatives=2,
        max_steps=40,
        learning_rate=1e-3,
        warmup_steps=2,
        bidirectional=True,
        pooling="mean",
        logging_steps=1,
        save_steps=1000,
        query_max_length=48,
        passage_max_length=64,
        seed=0,
        matryoshka_dims=[64, 128],
        gradient_checkpointing=True,
    )
    out = train(config)
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    losses = {}
    for entry in log:
        if "loss" in entry:
            losses.setdefault(entry["step"], entry["loss"])
    steps = sorted(losses)
    first, last = np.mean([losses[s] for s in steps[:8]]), np.mean([losses[s] for s in steps[-8:]])
    assert last < 0.9 * first, f"loss did not fall: first {first:.3f}, last {last:.3f}"
    assert (out / "loss_curve.png").stat().st_size > 5000
    saved = json.loads((out / "train_config.json").read_text())["dataset_weights"]
    assert saved["retr"] == pytest.approx(0.5)
    encoder = load_encoder(str(out))
    assert encoder.options.bidirectional is True and encoder.options.pooling.value == "mean"
    vectors = encoder.encode(["a man plays a guitar", "someone is playing music"])
    assert vectors.shape == (2, 128) and np.isfinite(vectors).all()
    assert load_encoder(str(out), dim=64).encode(["a"]).shape == (1, 64), "the Matryoshka dims are declared"


def test_batch_larger_than_a_dataset_fails_before_training(tiny_qwen2, mix_data, tmp_path):
    from qzhou_eval.errors import InvalidOptionError

    config = TrainConfig(
        model=str(tiny_qwen2),
        output_dir=str(tmp_path / "o"),
        stage=2,
        max_steps=2,
        datasets=[{"name": "cls", "path": mix_data["classification"], "kind": "classification"}],
        batch_size=4096,
    )
    with pytest.raises(InvalidOptionError, match="batch size .* is larger than dataset"):
        train(config)
    assert not (tmp_path / "o").exists(), "nothing may be written before the checks pass"


def _sts_score(model_dir: Path, out: Path) -> float:
    from qzhou_eval.runs.config import RunConfig
    from qzhou_eval.runs.runner import run_suite

    summary = run_suite(
        RunConfig(
            model_name_or_path=str(model_dir),
            benchmark="MTEB(eng, v2)",
            output_dir=out,
            tasks=["STSBenchmark"],
            data_dir=REPO.parent / "shared" / "mteb-data",
            model_name="local/trained",
        )
    )
    return 100 * summary.scores["STSBenchmark"]


@pytest.mark.slow
@pytest.mark.multiproc
def test_minilm_cosent_recipe_lifts_sts_one_and_two_processes(tmp_path):
    recipe = REPO / "reproducibility" / "train" / "minilm-sts-cosent-cpu.yaml"
    one = tmp_path / "one"
    subprocess.run([sys.executable, "-m", "qzhou_eval.cli.main", "train", str(recipe), f"output_dir={one}"], check=True)
    two = tmp_path / "two"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "qzhou_eval.cli.main",
            "train",
            str(recipe),
            f"output_dir={two}",
        ],
        check=True,
    )
    trained, distributed = _sts_score(one, tmp_path / "e1"), _sts_score(two, tmp_path / "e2")
    print(f"STSBenchmark: untrained 82.03, trained {trained:.2f}, trained on 2 processes {distributed:.2f}")
    assert trained >= 82.03 + 1.5
    assert abs(distributed - trained) <= 0.3


class _Interrupted(Exception):
    pass


def test_an_interrupted_and_resumed_run_sees_the_same_batches_and_ends_with_the_same_weights(
    tiny_qwen2, mix_data, tmp_path, monkeypatch
):
    from safetensors.torch import load_file

    from qzhou_eval.train.trainer import EmbeddingTrainer

    def config(out):
        return TrainConfig(
            model=str(tiny_qwen2),
            output_dir=str(tmp_path / out),
            stage=2,
            retrieval_share=0.5,
            max_steps=6,
            datasets=[
                {"name": "retr", "path": mix_data["retrieval"], "kind": "retrieval"},
                {"name": "nli", "path": mix_data["pair"], "kind": "pair"},
            ],
            batch_size=8,
            pair_batch_size=8,
            hard_negatives=1,
            logging_steps=1,
            save_steps=2,
            warmup_steps=0,
            query_max_length=32,
            passage_max_length=32,
            learning_rate=1e-3,
            training_args={"save_total_limit": 3},  # any TrainingArguments field reaches the Trainer
        )

    seen: list[tuple] = []
    stop_at: list[int] = []
    plain_loss = EmbeddingTrainer.compute_loss

    def recording_loss(self, model, inputs, *args, **kwargs):
        seen.append((str(inputs["kind"]), tuple(inputs["features"]["input_ids"][:, -1].tolist())))
        if stop_at and len(seen) == stop_at[0]:
            raise _Interrupted  # the 5th step dies after checkpoint-4 was saved
        return plain_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(EmbeddingTrainer, "compute_loss", recording_loss)
    train(config("straight"))
    straight, seen[:] = list(seen), []
    stop_at.append(5)
    with pytest.raises(_Interrupted):
        train(config("resumed"))
    before, seen[:], stop_at[:] = seen[:4], [], []
    assert json.loads((tmp_path / "resumed" / "checkpoint-4" / "sampler_state.json").read_text())["step"] == 4
    train(config("resumed"))  # the same config: resumes from checkpoint-4, its sampler state restored
    assert before + seen == straight, "a resumed run must train on exactly the batches of an uninterrupted one"
    assert sorted(p.name for p in (tmp_path / "straight").glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "resumed" / "training_log.jsonl").read_text().splitlines()
    ]
    assert [s for s in steps if s > 4][:2] == [5, 6]
    weights = {run: load_file(str(next((tmp_path / run).glob("*.safetensors")))) for run in ("straight", "resumed")}
    assert weights["straight"].keys() == weights["resumed"].keys()
    for name, tensor in weights["straight"].items():
        assert torch.equal(tensor, weights["resumed"][name]), f"{name} differs after resuming"
