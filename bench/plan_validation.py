"""Benchmark: ``qzhou-eval plan``'s predictions against what the runner then measures, task by task.

    python3 bench/plan_validation.py [--tasks STSBenchmark,SICK-R,...] [--data_dir ../shared/mteb-data]

For each task: the plan (the packaged all-MiniLM-L6-v2, this machine's throughput measured by ``--measure``),
then one runner process with a fresh output folder and cache (so nothing is reused from another task), whose
manifest records the texts it encoded, the real and computed tokens, and its encoding time. Two predictions
are shown: from the task's own local copy (how plan runs when the data is local) and from the statistics
alone (the task's copy hidden: its language's other local text stands in, as for a task that is not local).
Errors are (predicted - measured) / measured.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"

DEFAULT_TASKS = "STSBenchmark,SICK-R,Banking77Classification,SciFact,LCQMC,PAWSX"


def plan_of(tasks: list[str], data_dir: Path | None, out: Path, measure: bool, hide: frozenset[str] = frozenset()):
    from qzhou_eval.planning.plan import build_plan
    from qzhou_eval.runs.config import RunConfig

    config = RunConfig(model_name_or_path=None, benchmark=None, output_dir=out, tasks=tasks, data_dir=data_dir)
    config.model_name_or_path = _bundled()
    return build_plan(config, None, measure_here=measure, hide_local=hide)


def _bundled() -> str:
    from qzhou_eval._paths import bundled_model_path

    return bundled_model_path()


def measured(task: str, data_dir: Path, out: Path) -> dict:
    from qzhou_eval.cli.main import main as cli

    code = cli(["run", "--tasks", task, "--data_dir", str(data_dir), "--output_dir", str(out), "-q"])
    if code != 0:
        raise SystemExit(f"the runner exited {code} on {task}")
    manifest = json.loads(next(out.glob("qzhou-run-*.json")).read_text())
    entry = manifest["tasks"][task]
    return {**entry["encode_stats"], "wall_s": entry["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    args = parser.parse_args()
    tasks = args.tasks.split(",")
    data_dir = Path(args.data_dir)
    from tabulate import tabulate

    work = Path(tempfile.mkdtemp(prefix="plan-validation-"))
    planned = plan_of(tasks, data_dir, work / "plan", measure=True)
    own, local_rate = {t.task: t for t in planned.tasks}, planned.local
    # the task's own copy hidden (in --data_dir and in the demo pack): planned from statistics and its language
    blind = {t: plan_of([t], data_dir, work / f"plan-{t}", False, frozenset([t])).tasks[0] for t in tasks}
    rows, errors = [], {"encoded": [], "tokens": [], "tokens (stats only)": [], "encode time": []}
    for task in tasks:
        got = measured(task, data_dir, work / f"run-{task}")
        p, b = own[task], blind[task]
        predicted_s = local_rate.seconds(p.flops, p.total("padded_tokens"), 1)
        pairs = {
            "encoded": (p.total("encoded"), got["encoded"]),
            "tokens": (p.total("tokens"), got["tokens"]),
            "tokens (stats only)": (b.total("tokens"), got["tokens"]),
            "encode time": (predicted_s, got["encode_s"]),
        }
        row = [task]
        for name, (guess, truth) in pairs.items():
            err = (guess - truth) / truth
            errors[name].append(abs(err))
            row += [
                f"{guess:,.0f}" if name != "encode time" else f"{guess:.1f}",
                f"{truth:,.0f}" if name != "encode time" else f"{truth:.1f}",
                f"{err:+.1%}",
            ]
        row += [f"{got['wall_s']:.1f}"]
        rows.append(row)
    headers = ["task"]
    for name in errors:
        headers += [f"{name} pred", "measured", "err"]
    print(f"this machine: {local_rate.describe()} (plan --measure, all-MiniLM-L6-v2, 2 cores)")
    print(tabulate(rows, headers=[*headers, "task wall s"], tablefmt="github", disable_numparse=True))
    for name, values in errors.items():
        print(f"{name}: mean |error| {sum(values) / len(values):.1%}, worst {max(values):.1%}")


if __name__ == "__main__":
    main()
