"""``qzhou-eval mirror``: download a suite's datasets into the --data_dir layout (needs the hub)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qzhou_eval.cli.options import parse_list


def add_parser(sub) -> None:
    p = sub.add_parser("mirror", help="write every dataset a suite needs into a local --data_dir folder")
    p.add_argument("--benchmark", default=None, help='any mteb benchmark, e.g. "MTEB(eng, v2)"; or name --tasks')
    p.add_argument("--out", required=True, help="folder to write <TaskName>/ snapshots into")
    p.add_argument("--tasks", default=None, help="comma list: only these tasks of the benchmark, or any mteb tasks")
    p.add_argument("--overwrite", action="store_true", help="fetch again tasks that are already mirrored")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval.integrity.outputs import check_folder_target
    from qzhou_eval.runs.mirror import mirror_tasks
    from qzhou_eval.runs.suites import run_tasks

    if not args.benchmark and not args.tasks:
        raise argparse.ArgumentTypeError("pass --benchmark NAME or --tasks NAME[,NAME...]")
    check_folder_target(Path(args.out), "--out")
    tasks = run_tasks(args.benchmark, parse_list(args.tasks), (), ())
    status = mirror_tasks(tasks, args.out, overwrite=args.overwrite)
    for name, state in status.items():
        print(f"{name:<40} {state}")
    print(f"{len(status)} task(s) in {args.out}; run with --data_dir {args.out}")
    return 0
