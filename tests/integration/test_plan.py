"""``qzhou-eval plan``: offline, fast, close to what the runner then measures, and honest about what it assumes."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qzhou_eval.cli.main import main as cli
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.options import Batching
from qzhou_eval.planning.compute import parse_device
from qzhou_eval.planning.counts import SideCounts
from qzhou_eval.planning.estimate import _padding
from qzhou_eval.planning.plan import build_plan
from qzhou_eval.runs.config import RunConfig


def _plan_json(capsys, *args) -> dict:
    assert cli(["plan", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_both_suites_of_the_published_models_are_planned_offline_in_seconds(tmp_path):
    """No weights and no tokenizer here: the presets' published shapes and the local text stand in."""
    h100 = parse_device("H100", 0.35)
    started = time.monotonic()
    eng = build_plan(
        RunConfig(None, "MTEB(eng, v2)", tmp_path / "a", preset="qzhou-embedding", use_instruction=True), h100
    )
    zh = build_plan(RunConfig(None, "MTEB(cmn, v1)", tmp_path / "b", preset="qzhou-embedding-zh"), h100, gpus=8)
    assert time.monotonic() - started < 60
    assert len(eng.tasks) == 41 and len(zh.tasks) == 31
    assert eng.model.shape.output_dim == 3584 and zh.model.shape.output_dim == 1792
    # bf16 on a GPU: QZhou-Embedding normalises in bf16 (2-byte values); the Zh model after its float32 cast
    assert eng.value_bytes == 2 and zh.value_bytes == 4
    for plan in (eng, zh):
        assert all(t.flops > 0 and t.seconds > 0 and t.cache_bytes > 0 for t in plan.tasks)
        assert plan.total("encoded") <= plan.total("texts")
        assert plan.total("tokens") <= plan.total("padded_tokens") <= plan.total("tokens") / 0.97 + 1
    assert 1.0e6 < eng.total("encoded") < 2.0e6  # mteb's statistics: 1.86 M unique texts, less what mteb samples
    assert 5e16 < eng.total("flops") < 5e18  # ~13 GFLOP a token over several hundred million tokens
    assert zh.total("seconds") < eng.total("seconds")  # 8 GPUs against 1


def test_the_local_pack_is_predicted_within_five_percent_of_what_the_runner_measured(
    finished_run, minilm_path, shared_dir, tmp_path
):
    out, code, _ = finished_run
    assert code == 0
    measured = json.loads(next(out.glob("qzhou-run-*.json")).read_text())["tasks"]["STSBenchmark"]["encode_stats"]
    config = RunConfig(minilm_path, None, tmp_path, tasks=["STSBenchmark"], data_dir=shared_dir / "mteb-data")
    predicted = build_plan(config, None).tasks[0]
    assert predicted.total("encoded") == pytest.approx(measured["encoded"], rel=0.05)
    assert predicted.total("tokens") == pytest.approx(measured["tokens"], rel=0.05)
    config.encoder_options = {"pad_to_multiple_of": 64}
    padded = build_plan(config, None)
    assert padded.batching.pad_to_multiple_of == 64, "the planner reads the run's own Batching"
    assert padded.tasks[0].total("tokens") == pytest.approx(predicted.total("tokens"))
    assert padded.tasks[0].total("padded_tokens") > predicted.total("padded_tokens"), "rounding up costs tokens"


def test_a_finished_task_is_left_out_of_what_a_resumed_run_still_has_to_do(finished_run, minilm_path, capsys):
    out, _, _ = finished_run
    args = ["--benchmark", "MTEB(eng, v2)", "--tasks", "STSBenchmark", "SICK-R", "--output_dir", str(out)]
    args += ["-m", minilm_path, "--model_name", "sentence-transformers/all-MiniLM-L6-v2"]  # as the run was named
    plan = _plan_json(capsys, *args)
    done = {t["task"]: t["done"] for t in plan["tasks"]}
    assert done == {"STSBenchmark": True, "SICK-R": False}
    sick = next(t for t in plan["tasks"] if t["task"] == "SICK-R")
    assert plan["totals"]["remaining"]["cache_bytes"] == pytest.approx(sick["cache_bytes"])
    assert plan["totals"]["all"]["cache_bytes"] > plan["totals"]["remaining"]["cache_bytes"]
    # Other inputs (a shorter max_length): the run would refuse the folder, so nothing there is done.
    other = _plan_json(capsys, *args, "--max_length", "128")
    assert not any(t["done"] for t in other["tasks"])
    assert any("other inputs" in note and "max_length" in note for note in other["notes"])


def test_a_cache_larger_than_the_free_disk_is_said_before_the_run(monkeypatch, tmp_path, capsys):
    import qzhou_eval.planning.plan as planning

    monkeypatch.setattr(planning, "free_bytes", lambda path: 1000)
    assert cli(["plan", "--tasks", "STSBenchmark", "--output_dir", str(tmp_path)]) == 0
    assert "NOT ENOUGH SPACE" in capsys.readouterr().out
    assert not (tmp_path / ".embedding_cache").exists()  # a plan writes nothing


@pytest.mark.parametrize("bad", ["H900", "fast", "-5tok/s", "0"])
def test_a_device_that_is_neither_a_known_gpu_nor_a_throughput_is_refused(bad):
    with pytest.raises(InvalidOptionError, match="--device"):
        parse_device(bad, 0.35)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 512), min_size=1, max_size=400),
    st.integers(1, 300),
    st.sampled_from(["budget", "fixed", "reference", "packed"]),
)
def test_simulated_padding_is_a_share_and_the_budget_rule_keeps_it_under_three_percent(lengths, encoded, policy):
    lengths = np.array(lengths, float)
    batching = {
        "budget": Batching(32, 4096),
        "fixed": Batching(32, 0),
        "reference": Batching(32, 0, "reference"),
        "packed": Batching(32, 4096, packed=True),
    }[policy]
    assert batching.kind == policy
    efficiency, squared = _padding(lengths, lengths * 4, encoded, batching, seed=0)
    assert 0 < efficiency <= 1 and squared >= 1 - 1e-12
    if policy in ("budget", "packed"):
        assert efficiency >= 0.97 - 1e-9


@settings(max_examples=100, deadline=None)
@given(st.floats(1, 1e6), st.floats(0.01, 1), st.floats(0, 1))
def test_a_random_draw_never_has_more_unique_texts_than_texts(texts, unique_share, share):
    side = SideCounts("text", texts, texts * unique_share, 50 * texts * unique_share)
    drawn = side.drawn(share)
    assert drawn.unique_texts <= drawn.texts + 1e-6 and drawn.unique_texts <= side.unique_texts + 1e-6
    assert drawn.mean_characters == pytest.approx(side.mean_characters) or drawn.unique_texts == 0


def test_without_the_model_files_or_a_preset_the_plan_names_the_fix(tmp_path):
    from qzhou_eval.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="--preset"):
        build_plan(RunConfig("someone/absent-model", None, Path(tmp_path), tasks=["STSBenchmark"]), None)
