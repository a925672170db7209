"""Every real task of the local pack, run offline through the two runners, lands within 0.2 points of the
leaderboard value for all-MiniLM-L6-v2 (table in ../shared/mteb-data/README.md). Slow: `pytest -m slow`."""

import json
import re

import pytest

from qzhou_eval.cli.run_cmd import main_for_benchmark
from qzhou_eval.runs.results_io import read_task_result


def leaderboard_table(shared_dir) -> dict[str, float]:
    text = (shared_dir / "mteb-data" / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\S+) \| \w+ \| \w+ \| [\d,]+ \| ([\d.]+) \|$", text, flags=re.M)
    return {task: float(score) for task, score in rows}


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["MTEB(eng, v2)", "MTEB(cmn, v1)"], ids=["eng", "cmn"])
def test_minilm_matches_leaderboard(suite, shared_dir, minilm_path, tmp_path, capsys):
    expected = leaderboard_table(shared_dir)
    assert len(expected) == 5, "could not read the task table of mteb-data/README.md"
    code = main_for_benchmark(
        suite,
        [
            "--data_dir",
            str(shared_dir / "mteb-data"),
            "--only_available",
            "--output_dir",
            str(tmp_path),
            "--normalize",
            "true",
            "--pooling_mode",
            "mean",
        ],
    )
    assert code == 0
    files = sorted(tmp_path.glob("results/sentence-transformers__all-MiniLM-L6-v2/*/*.json"))
    scores = {f.stem: read_task_result(f).get_score() for f in files if f.stem != "model_meta"}
    assert scores, "no task ran"
    for task, score in scores.items():
        print(f"{suite} {task}: ours {100 * score:.2f} leaderboard {100 * expected[task]:.2f}")
        assert abs(100 * score - 100 * expected[task]) <= 0.2, (
            f"{task}: {100 * score:.2f} vs {100 * expected[task]:.2f}"
        )


@pytest.mark.slow
def test_scifact_with_no_flags_matches_leaderboard(shared_dir, tmp_path):
    """The issue's command: bundled model, no other flag; its long abstracts need the checkpoint's 256 tokens."""
    from qzhou_eval.cli.main import main

    assert (
        main(["run", "--tasks", "SciFact", "--data_dir", str(shared_dir / "mteb-data"), "--output_dir", str(tmp_path)])
        == 0
    )
    manifest = json.loads((tmp_path / "qzhou-run-tasks.json").read_text())
    assert manifest["resolved_options"]["max_length"] == {
        "value": 256,
        "source": "checkpoint: sentence_bert_config.json max_seq_length",
    }
    score = 100 * manifest["tasks"]["SciFact"]["main_score"]
    assert score == pytest.approx(64.51, abs=0.01), f"SciFact nDCG@10 {score:.2f}, leaderboard 64.51"
