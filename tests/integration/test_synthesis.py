"""Synthesis through a real OpenAI-compatible HTTP server on the loopback interface, with scripted answers.

Source rows are real SciFact train claims with their evidence; the scorer is the bundled MiniLM. Every
check and every retry path is hit, and a run stopped by its budget or killed midway resumes without
asking an answered request again or writing a row twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.testing.loopback_chat import ChatRequest, Fail, LoopbackChat, Reply, Stall
from qzhou_eval.train.synth.config import SynthConfig
from qzhou_eval.train.synth.pipeline import run_synthesis

REPO = Path(__file__).resolve().parents[2]

GOOD_NEGATIVE = (
    "This passage reviews hospital administration budgets and staffing schedules in regional clinics, covering "
    "procurement, payroll and facility maintenance over several years of operational management. It "
    "compares how administrators plan rosters, negotiate supplier contracts and schedule repairs."
)
# Per source row: the answer to each operation (a string is the content; a tuple adds a first failed attempt).
PARAPHRASE = {
    0: '{"text": "零维生物材料缺乏诱导特性。"}',  # language
    1: '{"text": "In the United Kingdom, one out of every five million people shows an abnormal positivity for the '
    'prion protein PrP in tests."}',  # length_band
    2: '{"text": "1-1% of Colorectal cancer patients are diagnosed with regional or distant metastases"}',  # copy
    3: '{"text": "In newborns younger than 6 months, 10% of SIDS (sudden infant death syndrome) deaths occur."}',
    4: '```json\n{"text": "In 2001, 32% of liver transplantation programs made patients stop their methadone treatment."}\n```',
    5: '{"text": "The weather in the mountains was cold and windy during the whole week of our long hiking trip there."}',
    6: 'Sure! {"text": ',  # malformed_json
    7: '{"paraphrase": "Taking folic acid and vitamin B12 does not change how chronic kidney disease progresses."}',
}
AUGMENTATION = {
    0: (
        "429",
        '{"query": "Magnetic nanoparticles allow stem cells to be tracked in vivo.", "positive": "Stem cell '
        'tracking with magnetic labels. Iron oxide nanoparticles make transplanted cells visible on MRI for weeks."}',
    ),
    1: (
        "500",
        '{"query": "Prion disease incubation periods exceed a decade in humans.", "positive": "Incubation of '
        'variant CJD. Estimates from exposure data suggest mean incubation periods longer than ten years."}',
    ),
    2: (
        "slow",
        '{"query": "Screening colonoscopy reduces colorectal cancer mortality.", "positive": "Colonoscopy and '
        'mortality. Screening programmes are associated with fewer deaths from colorectal cancer."}',
    ),
    3: '{"query": "Infant sleeping position affects the risk of sudden infant death.", "positive": "Sleep position and '
    'SIDS. Placing infants on their backs to sleep was followed by large falls in sudden infant deaths."}',
    4: '{"query": "32% of liver transplantation programs required patients to stop methadone treatment in 2001.", '
    '"positive": "Methadone policies of transplant centres varied widely in a national survey."}',  # rewording
}
NEGATIVE = {4: None}  # filled in by the fixture: the claim repeated (it beats the positive)


class Script:
    """Answers from the tables above by source row; ``hold_after``: answer this many, then hang (to be killed)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows, self.hold_after = rows, None

    def __call__(self, request: ChatRequest) -> Reply:
        source = request.source
        row = next(i for i, r in enumerate(self.rows) if r["query"] == source.get("query", source.get("text")))
        script = {"paraphrase": PARAPHRASE, "augmentation": AUGMENTATION}.get(request.op, NEGATIVE).get(row)
        if request.op == "hard_negative" and script is None:
            script = json.dumps({"negative": GOOD_NEGATIVE})
        if script is None:
            script = json.dumps(
                {
                    "query": f"Unrelated clinical question number {row}?",
                    "positive": f"A passage answering clinical question number {row} in detail.",
                }
            )
        if isinstance(script, tuple):
            failure, script = script
            if request.attempt == 1:  # "slow": past the client's timeout, so it has given up: no answer
                return Stall(2.0) if failure == "slow" else Fail(int(failure))
        if self.hold_after is not None and request.answered_total >= self.hold_after:
            return Stall(60)
        return script


@pytest.fixture(scope="module")
def source_rows(shared_dir) -> list[dict]:
    from qzhou_eval.train.data.retrieval_folder import read_retrieval_folder

    data = read_retrieval_folder(shared_dir / "mteb-data" / "SciFact", "train")
    rows = [
        {"query": data.queries[q], "positive": data.corpus[data.relevant[q][0]][:400]} for q in list(data.queries)[:8]
    ]
    NEGATIVE[4] = json.dumps({"negative": " ".join([rows[4]["query"]] * 4)})
    return rows


@pytest.fixture
def chat(source_rows):
    with LoopbackChat(Script(source_rows)) as server:
        yield server


@pytest.fixture
def server(chat) -> str:
    return chat.url


@pytest.fixture(scope="module")
def scorer(minilm_path):
    from qzhou_eval.api import load_encoder

    return load_encoder(minilm_path).encode


def _config(tmp_path, server: str, source_rows, **extra) -> SynthConfig:
    source = tmp_path / "source.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in source_rows))
    settings = {
        "operations": ["paraphrase", "augmentation", "hard_negative"],
        "base_url": server,
        "model": "scripted",
        "api_key_env": "QZHOU_TEST_KEY",
        "concurrency": 4,
        "timeout_s": 1.0,
        "backoff_s": 0.01,
        "max_retries": 3,
    }
    return SynthConfig(input=str(source), kind="retrieval", output_dir=str(tmp_path / "out"), **{**settings, **extra})


@pytest.fixture(autouse=True)
def _api_key(monkeypatch):
    monkeypatch.setenv("QZHOU_TEST_KEY", "test-key")


def test_every_check_and_retry_path(tmp_path, server, source_rows, scorer):
    report = run_synthesis(_config(tmp_path, server, source_rows), embed=scorer)
    assert report.rejected["paraphrase"] == {
        "language": 1,
        "length_band": 1,
        "copy": 1,
        "paraphrase_drifted": 1,
        "malformed_json": 1,
        "schema": 1,
    }
    assert report.kept["paraphrase"] == 2
    assert report.rejected["augmentation"] == {"rewording": 1} and report.kept["augmentation"] == 7
    assert report.rejected["hard_negative"] == {"negative_beats_positive": 1} and report.kept["hard_negative"] == 7
    assert report.retries == {"rate_limited": 1, "server_error": 1, "timeout": 1}
    assert report.answered_now == 24 and report.failed == 0 and report.tokens == 24 * 50
    out = Path(tmp_path / "out")
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and json.loads((out / "report.json").read_text())["kept"] == report.kept
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    assert Counter(r["reason"] for r in rejected)["language"] == 1 and len(rejected) == 8
    from qzhou_eval.train.data.readers import read_rows

    trainer_rows = read_rows(out / "rows.jsonl", "retrieval")  # the trainer reads the output as it is
    assert sum(len(r.negatives) == 1 for r in trainer_rows) == 7


def test_budget_stop_then_resume_asks_nothing_twice(tmp_path, chat, server, source_rows, scorer):
    first = run_synthesis(_config(tmp_path, server, source_rows, max_requests=10), embed=scorer)
    assert first.budget_reached and 0 < first.answered_now <= 10
    second = run_synthesis(_config(tmp_path, server, source_rows), embed=scorer)
    assert second.answered_before == first.answered_now and second.answered_before + second.answered_now == 24
    assert max(chat.answered.values()) == 1, "no answered request is asked again"
    rows = (Path(tmp_path / "out") / "rows.jsonl").read_text().splitlines()
    ids = [json.loads(r)["synthesis"]["request"] for r in rows]
    assert len(ids) == len(set(ids)) == 16


@pytest.mark.multiproc
def test_a_killed_run_resumes_without_duplicates(tmp_path, chat, server, source_rows, scorer, minilm_path):
    config = _config(tmp_path, server, source_rows, concurrency=2)
    config_file = tmp_path / "synth.yaml"
    fields = {k: v for k, v in vars(config).items() if v is not None}
    config_file.write_text(json.dumps({**fields, "scorer_model": minilm_path}))
    chat.answer.hold_after = 9
    env = {**os.environ, "PYTHONPATH": str(REPO), "QZHOU_TEST_KEY": "test-key"}
    child = subprocess.Popen(
        [sys.executable, "-m", "qzhou_eval.cli.main", "synth", str(config_file), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while sum(chat.answered.values()) < 9 and time.monotonic() < deadline:
        time.sleep(0.2)
    record = tmp_path / "out" / "requests.jsonl"
    while time.monotonic() < deadline and (not record.exists() or len(record.read_text().splitlines()) < 9):
        time.sleep(0.2)  # the child has received 9 answers; wait until it has recorded them
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (tmp_path / "out" / "rows.jsonl").exists(), "a killed run leaves no half-written output"
    chat.answer.hold_after = None
    report = run_synthesis(SynthConfig.from_file(config_file), embed=scorer)
    assert report.answered_before >= 1 and report.answered_before + report.answered_now == 24
    assert max(chat.answered.values()) == 1, "no answered request is asked again"
    ids = [json.loads(r)["synthesis"]["request"] for r in (tmp_path / "out" / "rows.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 16


def test_config_errors_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(InvalidOptionError, match="not available for pair data"):
        SynthConfig(input="x", kind="sts", output_dir="o", operations=["augmentation"])
    monkeypatch.delenv("QZHOU_TEST_KEY")
    with pytest.raises(InvalidOptionError, match="set the environment variable QZHOU_TEST_KEY"):
        SynthConfig(input="x", kind="retrieval", output_dir="o", api_key_env="QZHOU_TEST_KEY").api_key()
    bad = tmp_path / "c.yaml"
    bad.write_text("input: x\nkind: retrieval\noutput_dir: o\nmodell: gpt\n")
    with pytest.raises(InvalidOptionError, match=r"unknown config keys \['modell'\]"):
        SynthConfig.from_file(bad)
