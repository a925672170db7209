"""``qzhou-eval run`` and the reference-compatible runners (run_mteb_all_v2.py, run_cmteb_all.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qzhou_eval.cli.options import parse_bool
from qzhou_eval.runs.resume_check import finished_run_summary
from qzhou_eval.runs.suites import SUITES, bundled_task_names, parse_list, parse_shard

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def add_arguments(p: argparse.ArgumentParser, benchmark: str | None) -> None:
    """The public reference flags, unchanged, plus this harness's additions."""
    if benchmark is None:
        p.add_argument("--benchmark", required=True, choices=SUITES)
    p.add_argument("--model_name_or_path", default=None,
                   help="checkpoint folder or hub id (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--pooling_mode", default=None, help="mean | last | cls (reference default: mean)")
    p.add_argument("--normalize", type=parse_bool, default=None, help="true|false (default true)")
    p.add_argument("--use_instruction", type=parse_bool, default=False, help="true|false (default false, as the reference)")
    p.add_argument("--output_dir", default="results", help="results folder (mteb layout)")
    p.add_argument("--tasks", default=None, help="comma list: run only these tasks of the suite")
    p.add_argument("--exclude_tasks", default=None, help="comma list of tasks to leave out")
    p.add_argument("--task_types", default=None, help="comma list, e.g. STS,Classification")
    p.add_argument("--only_available", action="store_true", help="with --data_dir: run only the tasks present there")
    p.add_argument("--preset", default=None, help="qzhou-embedding | qzhou-embedding-zh")
    p.add_argument("--dim", type=int, default=None, help="MRL dimension")
    p.add_argument("--max_length", type=int, default=None, help="truncation length in tokens (default 1024)")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--dtype", default=None, help="bfloat16 | float16 | float32 (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--instructions", default=None, help="instruction file (JSON/YAML) instead of the bundled one")
    p.add_argument("--data_dir", default=None, help="local mirror of the datasets; the run never touches the network")
    p.add_argument("--cache_dir", default=None, help="embedding cache folder (default: inside --output_dir; 'none' = off)")
    p.add_argument("--overwrite", action="store_true", help="re-run finished tasks / replace another model's results")
    p.add_argument("--shard", default=None, help="I/N: run the I-th of N deterministic task shards")
    p.add_argument("--bidirectional", type=parse_bool, default=None, help="true|false: bidirectional Qwen attention")
    p.add_argument("--prompt_template", default=None, help="template with one {text} slot (e.g. PromptEOL)")
    p.add_argument("--token_prepending", type=parse_bool, default=None, help="true|false")
    p.add_argument("--trust_remote_code", type=parse_bool, default=None, help="true|false")
    p.add_argument("--model_name", default=None, help="org/name to file results under (default: hub id or local/<folder>)")


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="evaluate a checkpoint on MTEB(eng, v2) or MTEB(cmn, v1) through mteb")
    add_arguments(p, benchmark=None)
    p.set_defaults(handler=run)


def _encoder_options(args) -> dict:
    pairs = {
        "pooling": args.pooling_mode, "normalize": args.normalize, "dim": args.dim, "max_length": args.max_length,
        "batch_size": args.batch_size, "dtype": args.dtype, "bidirectional": args.bidirectional,
        "prompt_template": args.prompt_template, "token_prepending": args.token_prepending,
        "trust_remote_code": args.trust_remote_code,
    }
    return {k: v for k, v in pairs.items() if v is not None}


def build_config(args, benchmark: str):
    from qzhou_eval.runs.config import RunConfig

    model = args.model_name_or_path
    model_name = args.model_name
    if model is None and args.preset is None:
        from qzhou_eval.cli.encode_cmd import default_model_path

        model, model_name = default_model_path(), model_name or DEFAULT_MODEL_NAME
    tasks = parse_list(args.tasks)
    if args.only_available:
        if not args.data_dir:
            raise argparse.ArgumentTypeError("--only_available needs --data_dir")
        present = {p.name for p in Path(args.data_dir).iterdir() if p.is_dir()} if Path(args.data_dir).is_dir() else set()
        tasks = [t for t in bundled_task_names(benchmark) if t in present and (not tasks or t in tasks)]
        if not tasks:
            raise argparse.ArgumentTypeError(f"no task of {benchmark} is present in {args.data_dir}")
    cache = args.cache_dir
    return RunConfig(
        model_name_or_path=model,
        benchmark=benchmark,
        output_dir=Path(args.output_dir),
        encoder_options=_encoder_options(args),
        preset=args.preset,
        use_instruction=args.use_instruction,
        instructions_file=Path(args.instructions) if args.instructions else None,
        tasks=tasks,
        exclude_tasks=parse_list(args.exclude_tasks),
        task_types=parse_list(args.task_types),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        cache_dir=False if (cache or "").lower() == "none" else (Path(cache) if cache else True),
        overwrite=args.overwrite,
        shard=parse_shard(args.shard),
        model_name=model_name,
        device=args.device,
    )


def print_summary(summary, benchmark: str) -> None:
    print(f"\n{benchmark}: {len(summary.scores)} task(s), results in {summary.results_dir}")
    print(f"{'task':<40} {'main_score':>10}  status")
    for name, score in summary.scores.items():
        status = "ran" if name in summary.ran else "finished earlier"
        print(f"{name:<40} {100 * score:>10.2f}  {status}")
    if summary.cache_hit_rate is not None:
        print(f"embedding cache hit rate: {100 * summary.cache_hit_rate:.1f}%")


def run(args, benchmark: str | None = None) -> int:
    benchmark = benchmark or args.benchmark
    config = build_config(args, benchmark)
    summary = finished_run_summary(config)
    if summary is None:
        from qzhou_eval.runs.runner import run_suite  # mteb and torch load only when there is work

        summary = run_suite(config)
    print_summary(summary, benchmark)
    return 0


def main_for_benchmark(benchmark: str, argv: list[str] | None = None) -> int:
    """Entry of run_mteb_all_v2.py / run_cmteb_all.py: the reference flags for one fixed suite."""
    from qzhou_eval.cli.main import run_handled

    parser = argparse.ArgumentParser(description=f"Evaluate a checkpoint on {benchmark} (QZhou protocol).")
    add_arguments(parser, benchmark=benchmark)
    parser.add_argument("-v", "--verbose", action="count", default=1, help="-vv for debug logging")
    args = parser.parse_args(argv)
    return run_handled(lambda: run(args, benchmark), args.verbose)


