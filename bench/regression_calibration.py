"""Calibration of compare's verdicts on real runs: false positives under the null, power on real degradations.

    python3 bench/regression_calibration.py [--data_dir ../shared/mteb-data] [--out runs/calibration]
                                            [--seeds 100] [--scifact runs/scifact-eval]

Runs the bundled MiniLM over the local task pack (through ``qzhou-eval run``, so a second call reuses
the finished runs) as:

- ``base``: the defaults;
- ``rerun``: the same checkpoint again with another batch size and no embedding cache (the null);
- ``max_length_32``: the same model reading 32 tokens of each text;
- ``noise_X``: Gaussian noise of X times each weight tensor's standard deviation added to its weights.

and prints:

1. null: the tasks ``compare`` flags for base vs rerun (must be at most the nominal 5 %);
2. simulated null: per task, two pseudo-runs that draw each unit's output from base or noise_0.05 at
   random (exchangeable by construction) over ``--seeds`` seeds; the share with p < 0.05 and the share
   whose 95 % interval excludes 0 (both must be 5 % +- 2 points). noise_0.05 changes every unit's output
   (max_length 32 leaves SICK-R's short pairs untouched, which would make its null trivially exact);
3. power: per degradation and task, the delta, its interval, q and verdict; per task the smallest drop
   detected and the interval's half-width (the noise floor);
4. a real gain: the SciFact fine-tunes of reproducibility/scifact/ (run_experiment.sh) against the
   untrained model and against each other, when ``--scifact`` holds their runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qzhou_eval._paths import bundled_model_path  # noqa: E402

TASKS = ["STSBenchmark", "SICK-R", "LCQMC", "PAWSX", "Banking77Classification", "SciFact"]
NOISE = (0.02, 0.05)


def noisy_copy(source: Path, scale: float, target: Path, seed: int = 0) -> Path:
    """The checkpoint with N(0, (scale * std)^2) added to every floating weight tensor."""
    import torch
    from safetensors.torch import load_file, save_file

    if (target / "model.safetensors").is_file():
        return target
    shutil.copytree(source, target, dirs_exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    weights = load_file(str(source / "model.safetensors"))
    for name, tensor in weights.items():
        if tensor.is_floating_point() and tensor.numel() > 1:
            noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float32) * tensor.float().std() * scale
            weights[name] = (tensor.float() + noise).to(tensor.dtype)
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


def run(model: Path, out: Path, name: str, data_dir: str, *extra: str) -> float:
    start = time.monotonic()
    command = [sys.executable, "-m", "qzhou_eval.cli.main", "run", "--model_name_or_path", str(model),
               "--model_name", f"calibration/{name}", "--data_dir", data_dir, "--tasks", ",".join(TASKS),
               "--output_dir", str(out / name), "-q", *extra]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def compare(base: Path, new: Path) -> dict:
    from qzhou_eval.report.regression import compare_runs

    return compare_runs(base, new).as_record()


def simulated_null(base: Path, other: Path, seeds: int, resamples: int) -> dict[str, tuple[float, float, int]]:
    """Per task: (share p < 0.05, share of intervals excluding 0, trials) over pseudo-run pairs under the null."""
    from qzhou_eval.significance.paired import paired_groups, paired_test
    from qzhou_eval.significance.recorded_units import recorded_units
    from qzhou_eval.significance.units import TaskUnits, UnitGroup

    out = {}
    for task in TASKS:
        a = recorded_units(next(base.glob(f"*/*/{task}.json"))).units
        b = recorded_units(next(other.glob(f"*/*/{task}.json"))).units
        pairs = paired_groups(a, b)
        rejected = excluded = 0
        for seed in range(seeds):
            rng = np.random.default_rng(10_000 + seed)
            first, second = [], []
            for ga, gb in pairs:
                pick = rng.integers(0, 2, size=(2, ga.size), dtype=bool)
                for side, chosen in ((first, pick[0]), (second, pick[1])):
                    system = np.where(chosen, gb.system, ga.system)
                    side.append(UnitGroup(ga.split, ga.subset, ga.kind, ga.ids, ga.gold, system, ga.decimals, ga.unit))
            test = paired_test(TaskUnits(task, a.main_metric, tuple(first)), TaskUnits(task, a.main_metric, tuple(second)),
                               resamples=resamples, seed=seed)  # fmt: skip
            rejected += test.p_value < 0.05
            excluded += not (test.ci_low <= 0.0 <= test.ci_high)
        out[task] = (rejected / seeds, excluded / seeds, seeds)
        print(f"  {task:26s} p<0.05: {100 * rejected / seeds:5.1f}%   interval excludes 0: "
              f"{100 * excluded / seeds:5.1f}%   ({seeds} pairs)", flush=True)  # fmt: skip
    return out


def print_comparison(title: str, record: dict) -> None:
    print(f"\n{title}")
    print(f"  {'task':26s} {'delta':>7s} {'95% interval':>18s} {'q':>8s}  verdict")
    for task, row in record["tasks"].items():
        interval = "" if row["ci_low"] is None else f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
        q = "" if row["q"] is None else f"{row['q']:.2g}"
        print(f"  {task:26s} {row['delta']:+7.2f} {interval:>18s} {q:>8s}  {row['verdict']}")
    mean = record["mean"]
    interval = "" if mean["ci_low"] is None else f"[{mean['ci_low']:+.2f}, {mean['ci_high']:+.2f}]"
    print(f"  {'mean':26s} {mean['delta']:+7.2f} {interval:>18s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(REPO.parent / "shared" / "mteb-data"))
    parser.add_argument("--out", default=str(REPO / "runs" / "calibration"))
    parser.add_argument("--seeds", type=int, default=100, help="pseudo-run pairs per task for the simulated null")
    parser.add_argument("--null_resamples", type=int, default=2000, help="draws per simulated-null test")
    parser.add_argument("--scifact", default=str(REPO / "runs" / "scifact-eval"))
    args = parser.parse_args()
    out = Path(args.out)
    model = Path(bundled_model_path())
    runs = {"base": (model, []), "rerun": (model, ["--batch_size", "8", "--cache_dir", "none"]),
            "max_length_32": (model, ["--max_length", "32"])}  # fmt: skip
    for scale in NOISE:
        runs[f"noise_{scale}"] = (noisy_copy(model, scale, out / "models" / f"noise_{scale}"), [])
    print(f"runs of all-MiniLM-L6-v2 over {', '.join(TASKS)} in {out}:")
    for name, (path, extra) in runs.items():
        print(f"  {name:14s} {run(path, out, name, args.data_dir, *extra):7.1f} s", flush=True)

    null = compare(out / "base", out / "rerun")
    print_comparison("1. null: base vs rerun (batch 8, no cache)", null)
    flagged = sum(row["verdict"] != "within noise" for row in null["tasks"].values())
    print(f"  flagged {flagged} of {len(null['tasks'])} tasks (nominal rate 5 %); exit code {null['exit_code']}")

    print(f"\n2. simulated null: per unit, each pseudo-run takes base's or noise_{NOISE[-1]}'s output at random "
          f"({args.null_resamples} draws per test)")  # fmt: skip
    t0 = time.monotonic()
    shares = simulated_null(out / "base", out / f"noise_{NOISE[-1]}", args.seeds, args.null_resamples)
    trials = sum(s[2] for s in shares.values())
    p_rate = sum(s[0] * s[2] for s in shares.values()) / trials
    ci_rate = sum(s[1] * s[2] for s in shares.values()) / trials
    half = 100 * 1.96 * np.sqrt(0.05 * 0.95 / trials)
    print(f"  all tasks: p < 0.05 in {100 * p_rate:.1f}%, interval excludes 0 in {100 * ci_rate:.1f}% of {trials} "
          f"pairs (alpha 5 %, binomial 95 % band +-{half:.1f} points; {time.monotonic() - t0:.0f} s)")  # fmt: skip

    print("\n3. power: real degradations against base")
    detected: dict[str, list[float]] = {t: [] for t in TASKS}
    half_width: dict[str, list[float]] = {t: [] for t in TASKS}
    for name in [n for n in runs if n not in ("base", "rerun")]:
        record = compare(out / "base", out / name)
        print_comparison(f"  {name}", record)
        for task, row in record["tasks"].items():
            if row["ci_low"] is not None:
                half_width[task].append((row["ci_high"] - row["ci_low"]) / 2)
            if row["verdict"] == "significant drop":
                detected[task].append(-row["delta"])
    print(f"\n  {'task':26s} {'smallest drop detected':>24s} {'median interval half-width':>28s}")
    for task in TASKS:
        smallest = f"{min(detected[task]):.2f}" if detected[task] else "none"
        print(f"  {task:26s} {smallest:>24s} {np.median(half_width[task]):>28.2f}")

    scifact = Path(args.scifact)
    if all((scifact / n).is_dir() for n in ("untrained", "inbatch", "mined")):
        print("\n4. a real gain: the SciFact fine-tunes (reproducibility/scifact/)")
        for base, new in (("untrained", "inbatch"), ("untrained", "mined"), ("inbatch", "mined")):
            print_comparison(f"  {new} vs {base}", compare(scifact / base, scifact / new))
    else:
        print(
            f"\n4. SciFact fine-tunes: no runs in {scifact}; run bash reproducibility/scifact/run_experiment.sh first"
        )
    (out / "calibration.json").write_text(json.dumps({"null": null, "simulated_null": shares}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
