"""``qzhou-eval plan``: what a run will cost (texts, tokens, padding, FLOPs, time, cache) before it starts."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from qzhou_eval.cli import run_cmd
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import POSITIVE_INT, number_arg


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="estimate a run before it starts: texts, tokens, padding, FLOPs, time and cache size per task",
        conflict_handler="resolve",
    )
    run_cmd.add_arguments(p, benchmark=None)
    p.add_argument(
        "--device",
        default=None,
        help="the GPU the run will use: a model (H100, H200, A100, L40S, L4, A10) for a time at --mfu, or its "
        "measured throughput (e.g. 12000tok/s); its defaults apply (bf16, the CUDA token budget). Without it the "
        "plan is of a run on this machine (its dtype and budget) and gives no device time",
    )
    p.add_argument(
        "--mfu", type=float, default=None, help="share of the GPU's bf16 peak the run reaches (default 0.35)"
    )
    p.add_argument(
        "--gpus", type=number_arg(POSITIVE_INT), default=1, help="data-parallel ranks (torchrun) to divide by"
    )
    p.add_argument(
        "--measure",
        action="store_true",
        help="also encode local text for a few seconds on this machine and give the time at that throughput",
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval.planning.compute import DEFAULT_MFU, parse_device
    from qzhou_eval.planning.plan import build_plan
    from qzhou_eval.runs.offline import go_offline

    go_offline()  # a plan reads local files only: a hub id that is not cached is planned from its preset

    args.benchmark = run_cmd.one_benchmark(args.benchmark)
    if args.mfu is not None and args.device is None:
        raise InvalidOptionError("--mfu applies to a GPU named by --device; add --device H100 (or another)")
    throughput = parse_device(args.device, args.mfu or DEFAULT_MFU) if args.device else None
    config = run_cmd.build_config(args, args.benchmark)
    config.device = None  # plan's --device names the target GPU, not the torch device of run's --device
    plan = build_plan(config, throughput, gpus=args.gpus, measure_here=args.measure)
    if args.format == "json":
        json.dump(plan_record(plan), sys.stdout, indent=1)
        print()
    else:
        print_plan(plan)
    return 0


def plan_record(plan) -> dict:
    """The plan for scripts: every task's figures, the totals, and what they rest on."""
    remaining = plan.remaining()
    fields = ("texts", "encoded", "tokens", "padded_tokens")
    return {
        "suite": plan.suite,
        "model": {"name": plan.model.name, **asdict(plan.model.shape)},
        "options": {k: plan.model.spec[k] for k in ("max_length", "dtype", "dim", "pooling")},
        "batching": {
            "policy": plan.batching.kind,
            "max_rows": plan.batching.max_rows,
            "max_tokens": plan.batching.max_tokens,
        },
        "stored_value_bytes": plan.value_bytes,
        "device": plan.throughput.describe() if plan.throughput else None,
        "this_machine": plan.local.describe() if plan.local else None,
        "gpus": plan.gpus,
        "tasks": [
            {
                **{k: v for k, v in asdict(t).items() if k != "sides"},
                "sides": [asdict(s) for s in t.sides],
            }
            for t in plan.tasks
        ],
        "totals": {
            "all": {**{f: plan.total(f) for f in fields}, **_money(plan, None)},
            "remaining": {**{f: plan.total(f, remaining) for f in fields}, **_money(plan, remaining)},
        },
        "cache": {
            "path": str(plan.cache_path) if plan.cache_path else None,
            "free_bytes": plan.cache_free_bytes,
            "enough_space": not plan.disk_short,
        },
        "notes": plan.notes,
    }


def _money(plan, tasks) -> dict:
    return {k: plan.total(k, tasks) for k in ("flops", "seconds", "local_seconds", "cache_bytes")}


def print_plan(plan) -> None:
    from tabulate import tabulate

    shape, options = plan.model.shape, plan.model.spec
    print(f"plan of {plan.suite}: {len(plan.tasks)} task(s), {plan.model.name}")
    print(
        f"  model: {shape.matmul_params / 1e9:.2f} B matmul weights, {shape.layers} layers, {shape.output_dim}-dim "
        f"vectors ({shape.source}); max_length {options['max_length']}, batching {plan.batching.kind}"
        + (f" ({plan.batching.max_rows} rows / {plan.batching.max_tokens} tokens)" if not plan.batching.packed else "")
    )
    if plan.throughput:
        print(f"  device: {plan.throughput.describe()} x {plan.gpus} GPU(s)")
    if plan.local:
        print(f"  {plan.local.describe()}")
    rows = []
    for t in plan.tasks:
        tokens, padded = t.total("tokens"), t.total("padded_tokens")
        truncated = max((s.truncated for s in t.sides), default=0.0)
        rows.append(
            [
                t.task,
                t.task_type,
                t.language,
                _count(t.total("texts")),
                _count(t.total("encoded")),
                _count(tokens),
                f"{truncated:.1%}",
                f"{(padded - tokens) / max(tokens, 1):.1%}",
                f"{t.flops / 1e15:.2f}",
                _duration(t.seconds),
                _duration(t.local_seconds),
                _size(t.cache_bytes),
                "done" if t.done else "",
                _short_source(t),
            ]
        )
    headers = ["task", "type", "lang", "texts", "encoded", "tokens", "trunc", "pad", "PFLOP", "time", "here", "cache"]
    print(tabulate(rows, headers=[*headers, "status", "lengths from"], tablefmt="simple", disable_numparse=True))
    for label, tasks in (("all tasks", plan.tasks), ("still to run", plan.remaining())):
        if label == "still to run" and len(tasks) == len(plan.tasks):
            continue
        print(
            f"{label}: {_count(plan.total('texts', tasks))} texts, {_count(plan.total('encoded', tasks))} encoded, "
            f"{_count(plan.total('tokens', tasks))} tokens ({_count(plan.total('padded_tokens', tasks))} computed), "
            f"{plan.total('flops', tasks) / 1e15:,.1f} PFLOP"
            + (f", {_duration(plan.total('seconds', tasks))} on the device" if plan.throughput else "")
            + (f", {_duration(plan.total('local_seconds', tasks))} here" if plan.local else "")
            + f", cache {_size(plan.total('cache_bytes', tasks))} ({plan.value_bytes}-byte values)"
        )
    if plan.cache_path is not None:
        need, free = plan.total("cache_bytes", plan.remaining()), plan.cache_free_bytes
        verdict = "NOT ENOUGH SPACE" if plan.disk_short else "enough space"
        print(
            f"cache: {plan.cache_path}: needs up to {_size(need)}, {_size(free) if free is not None else '?'} free ({verdict})"
        )
    for note in plan.notes:
        print(f"note: {note}")
    print(
        "encoded: unique texts (an upper bound where two columns share texts); tokens after prefix and truncation; "
        "time: encoding only (mteb's scoring comes on top)"
    )


_COUNT_UNITS = (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1))
_BYTE_UNITS = ((" TB", 1e12), (" GB", 1e9), (" MB", 1e6), (" kB", 1e3), (" B", 1))


def _count(value: float) -> str:
    return _scaled(value, _COUNT_UNITS, 2)


def _size(value: float | None) -> str:
    return "" if value is None else _scaled(value, _BYTE_UNITS, 1)


def _scaled(value: float, units: tuple[tuple[str, float], ...], decimals: int) -> str:
    """``value`` in the largest unit it reaches (whole numbers below the smallest)."""
    for unit, size in units:
        if value >= size and size > 1:
            return f"{value / size:.{decimals}f}{unit}"
    return f"{value:.0f}{units[-1][0]}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _short_source(task) -> str:
    sources = {s.lengths_from.split(",")[0] for s in task.sides}
    return "; ".join(sorted(sources))[:60]
