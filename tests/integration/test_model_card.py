"""``qzhou-eval card``: model-index metadata the Hub's parser reads, merged into an existing README."""

from __future__ import annotations

import shutil

import pytest

from qzhou_eval.cli.main import main
from qzhou_eval.errors import CardError
from qzhou_eval.report.model_card import SECTION_START, read_card, write_card

MODEL = "Kingsoft-LLM__QZhou-Embedding"
EXISTING = """---
license: apache-2.0
tags:
- sentence-transformers
model-index:
- name: someone/else
  results: []
---
# QZhou-Embedding

Hand-written text that must survive.
"""


@pytest.fixture
def run_dir(shared_dir, tmp_path):
    """A real published result folder (the snapshot's QZhou-Embedding files) as a run."""
    src = shared_dir / "leaderboard-results" / "results" / MODEL
    dst = tmp_path / "run" / MODEL
    shutil.copytree(src, dst)
    return dst


def test_card_merges_into_an_existing_readme_and_the_hub_reads_it(run_dir, tmp_path, capsys):
    from huggingface_hub import ModelCard

    readme = tmp_path / "README.md"
    readme.write_text(EXISTING, encoding="utf-8")
    assert main(["card", str(run_dir), "--readme", str(readme), "--overwrite"]) == 0
    assert "model-index results for Kingsoft-LLM/QZhou-Embedding" in capsys.readouterr().out
    assert (
        main(["card", str(run_dir), "--readme", str(readme), "--overwrite"]) == 0
    )  # a second run replaces, never duplicates
    text = readme.read_text(encoding="utf-8")
    assert text.count(SECTION_START) == 1 and "Hand-written text that must survive." in text
    card = ModelCard.load(readme)
    assert card.data.license == "apache-2.0" and card.data.tags == ["sentence-transformers", "mteb"]
    names = [entry["name"] for entry in read_card(readme).metadata["model-index"]]
    assert names == ["someone/else", "Kingsoft-LLM/QZhou-Embedding"], "other models' entries are kept"
    results = {(r.dataset_name, r.dataset_split): r for r in card.data.eval_results}
    sts = results[("MTEB STSBenchmark (default)", "test")]
    assert (
        sts.task_type == "STS" and sts.metric_type == "cosine_spearman" and sts.dataset_type == "mteb/stsbenchmark-sts"
    )
    assert "| STSBenchmark " in text and f"{sts.metric_value:.2f}" in text, "the table and the metadata agree"
    assert "MTEB(eng, v2)" in text and "MTEB(cmn, v1)" in text


def test_malformed_header_names_the_line_and_leaves_the_file(run_dir, tmp_path):
    readme = tmp_path / "README.md"
    broken = "---\nlicense: apache-2.0\ntags: [a, b\npipeline_tag: x\n---\n# text\n"
    readme.write_text(broken, encoding="utf-8")
    with pytest.raises(CardError, match=r"README.md: line \d: malformed YAML in the metadata header"):
        write_card(run_dir, readme, readme=readme)
    assert readme.read_text(encoding="utf-8") == broken
    assert main(["card", str(run_dir), "--readme", str(readme), "--overwrite"]) == 2
    assert readme.read_text(encoding="utf-8") == broken
