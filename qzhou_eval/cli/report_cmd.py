"""``qzhou-eval report``, ``compare`` and ``submit``: what users do with a finished run."""

from __future__ import annotations

import sys
from pathlib import Path

from qzhou_eval.cli.options import parse_list
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import FRACTION, NON_NEGATIVE, POSITIVE_INT, number_arg
from qzhou_eval.integrity.outputs import check_output, same_file


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="leaderboard tables of runs against baselines (markdown, CSV, JSON, PNG)")
    p.add_argument("run_dirs", nargs="*", help="run folders in mteb's results layout")
    p.add_argument("--benchmark", required=True, help='"MTEB(eng, v2)" or "MTEB(cmn, v1)"')
    p.add_argument(
        "--baselines", default=None, help="results repository checkout (or its results/ folder) or mteb's cache"
    )
    p.add_argument(
        "--models", default=None, help="comma list of org/name baselines, or 'all' (default with --baselines)"
    )
    p.add_argument(
        "--convention", default="leaderboard-2025-08", help="split/subset convention: leaderboard-2025-08 | mteb"
    )
    p.add_argument(
        "--format",
        choices=("markdown", "csv", "json", "html"),
        default="markdown",
        help="html: one self-contained page (both tables, the chart, deltas, the runs' manifests)",
    )
    p.add_argument("--table", choices=("task-types", "tasks"), default="task-types")
    p.add_argument("--reference", default=None, help="add delta columns against this model")
    p.add_argument(
        "--chart",
        default=None,
        help="also write a PNG chart of task-type scores here (with --reference, also <name>-intervals.png: "
        "deltas with their 95%% paired intervals as error bars)",
    )
    p.add_argument("--out", default=None, help="write the table to this file instead of stdout")
    p.add_argument("--force", action="store_true", help="replace an existing --out/--chart file")
    p.set_defaults(handler=run_report)

    c = sub.add_parser(
        "compare",
        help="NEW - BASE per task with paired bootstrap intervals and randomisation p-values; exit 0 no "
        "significant drop, 1 a significant drop beyond --min-effect (or, with --require-all, a task missing in NEW), "
        "2 bad input, 3 internal error",
    )
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument(
        "--benchmark",
        default=None,
        help="default: the suite that holds every task of the runs, else 'tasks' (every task both runs scored)",
    )
    c.add_argument("--convention", default="leaderboard-2025-08")
    c.add_argument(
        "--require-all",
        action="store_true",
        help="fail (exit 1) when NEW lacks a task BASE has (default: a partial NEW is compared on its tasks)",
    )
    c.add_argument(
        "--alpha",
        type=number_arg(FRACTION),
        default=0.05,
        help="false discovery rate across the tasks (Benjamini-Hochberg; default 0.05)",
    )
    c.add_argument(
        "--min-effect",
        type=number_arg(NON_NEGATIVE),
        default=0.0,
        help="points a significant drop must exceed to fail (default 0: any significant drop fails)",
    )
    c.add_argument(
        "--max-task-drop",
        type=number_arg(NON_NEGATIVE),
        default=1.0,
        help="points a task without per-sample data (leaderboard baselines) may drop (default 1.0)",
    )
    c.add_argument(
        "--max-mean-drop",
        type=number_arg(NON_NEGATIVE),
        default=0.3,
        help="points the mean may drop when some task lacks per-sample data (default 0.3)",
    )
    c.add_argument(
        "--resamples", type=number_arg(POSITIVE_INT), default=10_000, help="bootstrap and randomisation draws"
    )
    c.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    c.add_argument("--format", choices=("table", "json"), default="table", help="json: the same figures for CI")
    c.set_defaults(handler=run_compare, internal_error_code=3)

    s = sub.add_parser("submit", help="write a run in the results-repository layout, validated with mteb")
    s.add_argument("run_dir")
    s.add_argument("--out", required=True, help="folder to write results/<org__model>/<revision>/ into")
    s.add_argument("--benchmark", default=None)
    s.add_argument("--allow-partial", action="store_true", help="submit a run that does not cover the whole suite")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument(
        "--revision",
        default=None,
        help="the hub commit of the weights (default: the one the run recorded from a hub-cache snapshot, else the "
        "weights fingerprint, with a warning: the leaderboard files results under the hub commit)",
    )
    s.set_defaults(handler=run_submit)

    k = sub.add_parser("card", help="a Hugging Face model card with the run's results (model-index + tables)")
    k.add_argument("run_dir", help="one model's results folder (<org__model> or <org__model>/<revision>)")
    k.add_argument("--readme", default=None, help="an existing card to merge into (kept otherwise intact)")
    k.add_argument("--out", default=None, help="where to write (default: --readme itself, else model_card.md)")
    k.add_argument(
        "--convention", default="mteb", help="split/subset convention of the tables: mteb | leaderboard-2025-08"
    )
    k.add_argument("--overwrite", action="store_true", help="replace an existing --out (or update --readme in place)")
    k.set_defaults(handler=run_card)


def _refuse_existing(path: str | None, force: bool, run_dirs: list[str], flag: str) -> None:
    """An output is never a file of the runs read, and replaces an existing file only with --force."""
    if path:
        inputs = [p for d in run_dirs if Path(d).is_dir() for p in Path(d).rglob("*") if p.is_file()]
        check_output(path, inputs=inputs, overwrite=force, flag=flag, overwrite_flag="--force")


def run_report(args) -> int:
    from qzhou_eval._atomic import atomic_write_text
    from qzhou_eval.report.plots import task_type_chart
    from qzhou_eval.report.tables import build_report, render

    _refuse_existing(args.out, args.force, args.run_dirs, "--out")
    _refuse_existing(args.chart, args.force, args.run_dirs, "--chart")
    if args.out and args.chart and same_file(Path(args.out), Path(args.chart)):
        raise InvalidOptionError(f"--out and --chart name the same file ({args.out}); give each its own path")
    models = parse_list(args.models) or None
    report = build_report(
        args.run_dirs,
        args.benchmark,
        baselines=args.baselines,
        models=models,
        convention=args.convention,
        reference=args.reference,
    )
    if args.format == "html":
        from qzhou_eval.report.html import render_html, run_manifests

        text = render_html(report, run_manifests(args.run_dirs, report.benchmark))
    else:
        text = render(report, args.format, args.table)
    if args.out:
        atomic_write_text(Path(args.out), text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    if args.chart:
        print(f"wrote {task_type_chart(report, args.chart)}", file=sys.stderr)
        if report.paired:
            from qzhou_eval.report.plots import delta_chart

            intervals = Path(args.chart).with_name(f"{Path(args.chart).stem}-intervals.png")
            _refuse_existing(str(intervals), args.force, args.run_dirs, "--chart (its -intervals.png)")
            print(f"wrote {delta_chart(report.paired, report.reference, intervals)}", file=sys.stderr)
    return 0


def run_compare(args) -> int:
    from qzhou_eval.report.regression import Settings, compare_runs, render_comparison

    settings = Settings(
        alpha=args.alpha,
        min_effect=args.min_effect,
        max_task_drop=args.max_task_drop,
        max_mean_drop=args.max_mean_drop,
        resamples=args.resamples,
        seed=args.seed,
        require_all=args.require_all,
    )
    result = compare_runs(args.base, args.new, benchmark=args.benchmark, convention=args.convention, settings=settings)
    if args.format == "json":
        import json

        print(json.dumps(result.as_record(), indent=2))
    else:
        print(render_comparison(result), end="")
    return 1 if result.flags else 0


def run_submit(args) -> int:
    from qzhou_eval.report.submission import submit

    target, meta = submit(
        args.run_dir,
        args.out,
        benchmark=args.benchmark,
        allow_partial=args.allow_partial,
        overwrite=args.overwrite,
        revision=args.revision,
    )
    from qzhou_eval.report.submission import next_commands

    print(f"wrote and validated {target} (revision from {meta.revision_from})")
    if meta.from_registry:
        print(f"model_meta.json: {', '.join(meta.from_registry)} from mteb's registry")
    if meta.from_card:
        print(f"model_meta.json: {', '.join(meta.from_card)} from the checkpoint's model card")
    if meta.unknown:
        print(f"model_meta.json: still unknown, fill in {target / 'model_meta.json'} before the PR: {meta.unknown}")
    from qzhou_eval.results.layout import model_name_of

    model_name = model_name_of(target.parent.name)
    commands = next_commands(args.out, model_name)
    print("next, on a machine with network access (mteb >= 2.26 and a GitHub login):")
    print(f"  {commands[0]}   # commits to a branch of a local results clone, to push and open a PR yourself")
    print(f"  {commands[1]}   # or pushes to your fork and opens the PR (pip install 'mteb[github]', gh auth login)")
    print(f"  by hand: {commands[2]}")
    return 0


def run_card(args) -> int:
    from qzhou_eval.report.model_card import write_card

    out = args.out or args.readme or "model_card.md"
    inputs = [p for p in Path(args.run_dir).rglob("*") if p.is_file()] if Path(args.run_dir).is_dir() else []
    if Path(out).exists() and not args.overwrite:
        what = "update --readme in place" if args.readme and same_file(Path(out), Path(args.readme)) else "replace it"
        raise InvalidOptionError(f"{out} exists; pass --overwrite to {what} (the card is merged, other text kept)")
    check_output(out, inputs=inputs, overwrite=True, flag="--out")
    summary = write_card(args.run_dir, out, readme=args.readme, convention=args.convention)
    suites = ", ".join(summary.benchmarks) or "no full suite"
    print(f"wrote {summary.path}: {summary.entries} model-index results for {summary.model}; tables: {suites}")
    return 0
