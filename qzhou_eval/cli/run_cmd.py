"""``qzhou-eval run`` and the reference-compatible runners (run_mteb_all_v2.py, run_cmteb_all.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from qzhou_eval._ranks import process_rank
from qzhou_eval.cli.handling import (
    CliParser,
    add_kebab_aliases,
    add_mteb_verbosity,
    add_verbosity,
    run_handled,
    verbosity_counts,
)
from qzhou_eval.cli.options import add_encoder_flags, encoder_options_given, parse_bool, parse_list
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.numbers import FRACTION, NON_NEGATIVE_INT, POSITIVE_INT, number_arg
from qzhou_eval.record.readability_limits import ReadabilityLimits
from qzhou_eval.remote.endpoint import EndpointSettings
from qzhou_eval.resolution.backends import BACKEND_NAMES, capabilities

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def add_arguments(p: argparse.ArgumentParser, benchmark: str | None) -> None:
    """The public reference flags, unchanged, plus this harness's additions."""
    if benchmark is None:
        p.add_argument(
            "--benchmark",
            "-b",
            "--benchmarks",
            nargs="+",
            default=None,
            help='any mteb benchmark, e.g. "MTEB(eng, v2)" (one per run); without it, --tasks names mteb tasks',
        )
    p.add_argument(
        "--model_name_or_path",
        "-m",
        "--model",
        default=None,
        help="checkpoint folder or hub id (default: the packaged all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--use_instruction",
        type=parse_bool,
        default=None,
        help="true|false (default false, as the reference; giving --instructions turns it on)",
    )
    p.add_argument(
        "--output_dir",
        "--output_folder",
        default="results",
        help="run folder; results go to <output_dir>/results/<org__model>/<revision>/, which mteb.ResultCache reads",
    )
    p.add_argument(
        "--tasks",
        "-t",
        nargs="+",
        default=None,
        help="tasks, space- or comma-separated: only these of the benchmark, or (no --benchmark) any mteb tasks",
    )
    p.add_argument("--exclude_tasks", nargs="+", default=None, help="tasks to leave out (space- or comma-separated)")
    p.add_argument("--task_types", nargs="+", default=None, help="e.g. STS Classification (or STS,Classification)")
    p.add_argument("--only_available", action="store_true", help="with --data_dir: run only the tasks present there")
    p.add_argument(
        "--preset",
        default=None,
        help="qzhou-embedding | qzhou-embedding-zh | none (default: recognised from the checkpoint)",
    )
    p.add_argument("--device", default=None)
    add_encoder_flags(p)
    p.add_argument(
        "--instructions",
        default=None,
        help="instruction variant (reference | leaderboard-2025-08) or file (JSON/YAML); turns "
        "instructions on; default: the preset's variant, else reference",
    )
    p.add_argument("--data_dir", default=None, help="local mirror of the datasets; the run never touches the network")
    p.add_argument(
        "--cache_dir", default=None, help="embedding cache folder (default: inside --output_dir; 'none' = off)"
    )
    p.add_argument("--overwrite", action="store_true", help="re-run finished tasks / replace another model's results")
    p.add_argument(
        "--overwrite_strategy",
        choices=("only-missing", "always"),
        default=None,
        help="mteb's spelling: only-missing (the default: finished tasks are kept) or always (= --overwrite)",
    )
    add_mteb_verbosity(p)
    p.add_argument("--shard", default=None, help="I/N: run the I-th of N deterministic task shards")
    p.add_argument(
        "--model_name", default=None, help="org/name to file results under (default: hub id or local/<folder>)"
    )
    p.add_argument(
        "--backend",
        default="hf",
        choices=list(BACKEND_NAMES),
        help="hf: transformers in this process (default; every option); vllm: vLLM's engine "
        "(pip install 'qzhou-eval[vllm]'; no Token Prepending); openai: an OpenAI-compatible /v1/embeddings "
        "server such as vllm serve or text-embeddings-inference (--base_url; pip install 'qzhou-eval[endpoint]')",
    )
    p.add_argument(
        "--revision",
        "--model_revision",
        default=None,
        help="the revision results are filed under (default: the checkpoint's content fingerprint; for a served "
        "model without local weights, no_revision_available)",
    )
    add_endpoint_arguments(p)
    p.add_argument(
        "--fail_fast", action="store_true", help="stop at the first task that fails (default: record it, go on)"
    )
    p.add_argument(
        "--no_predictions",
        dest="predictions",
        action="store_false",
        help="do not keep per-sample predictions and units (compare then falls back to point deltas)",
    )
    p.add_argument(
        "--collapse_error",
        type=number_arg(FRACTION),
        default=ReadabilityLimits.collapse_error,
        help="share of a task's sampled distinct texts that collapse to one token sequence or embedding at which "
        "the task fails as unreadable (default 0.9; 1.0 turns the check off)",
    )
    p.add_argument(
        "--readability_warn",
        type=number_arg(FRACTION),
        default=ReadabilityLimits.warn,
        help="share of unknown-token pieces or collapsed texts that earns a warning (default 0.05)",
    )


def add_endpoint_arguments(p: argparse.ArgumentParser) -> None:
    """--backend openai: where the server is and how hard to try (defaults: remote.endpoint.EndpointSettings)."""
    group = p.add_argument_group("served models (--backend openai)")
    group.add_argument(
        "--base_url",
        action="append",
        default=None,
        help="the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1; repeat it (or comma-separate) for "
        "several replicas, which get requests in turn",
    )
    group.add_argument("--api_key_env", default=None, help="environment variable that holds the API key")
    group.add_argument("--served_model", default=None, help="model name on the server (default: the one it lists)")
    group.add_argument(
        "--endpoint_concurrency",
        type=number_arg(POSITIVE_INT),
        default=EndpointSettings.concurrency,
        help=f"requests in flight per base URL (default {EndpointSettings.concurrency})",
    )
    group.add_argument(
        "--request_timeout",
        type=number_arg(POSITIVE_INT),
        default=int(EndpointSettings.timeout_s),
        help=f"seconds one request may take (default {int(EndpointSettings.timeout_s)})",
    )
    group.add_argument(
        "--max_retries",
        type=number_arg(NON_NEGATIVE_INT),
        default=EndpointSettings.max_retries,
        help=f"retries of a request on 429, 5xx, timeouts, lost connections, with backoff (default "
        f"{EndpointSettings.max_retries})",
    )
    group.add_argument(
        "--verify_endpoint",
        type=number_arg(NON_NEGATIVE_INT),
        default=None,
        help=f"encode this many of the first task's texts through the server and the local checkpoint "
        f"(--model_name_or_path FOLDER) and stop below --verify_floor (default {EndpointSettings.VERIFY_DEFAULT} "
        "with local weights; 0 = off)",
    )
    group.add_argument(
        "--verify_floor",
        type=number_arg(FRACTION),
        default=EndpointSettings.verify_floor,
        help=f"lowest cosine between served and local embeddings (default {EndpointSettings.verify_floor})",
    )


def endpoint_settings(args) -> EndpointSettings | None:
    """The endpoint settings of ``--backend openai`` (None for the other backends)."""
    if not capabilities(args.backend).served:
        if args.base_url:
            raise InvalidOptionError("--base_url is for --backend openai; add it, or drop --base_url")
        return None
    urls = tuple(u for value in args.base_url or () for u in parse_list(value))
    return EndpointSettings(
        base_urls=urls,
        api_key_env=args.api_key_env,
        served_model=args.served_model,
        concurrency=args.endpoint_concurrency,
        timeout_s=float(args.request_timeout),
        max_retries=args.max_retries,
        verify_texts=args.verify_endpoint,
        verify_floor=args.verify_floor,
    )


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="evaluate a checkpoint on an mteb benchmark or tasks (QZhou protocol)")
    add_arguments(p, benchmark=None)
    p.set_defaults(handler=run)


def build_config(args, benchmark: str | None):
    from qzhou_eval.runs.config import RunConfig
    from qzhou_eval.runs.suites import parse_shard

    if getattr(args, "benchmark", None) is not None and not str(args.benchmark).strip():
        raise InvalidOptionError(
            '--benchmark "" names nothing; name a benchmark (e.g. "MTEB(eng, v2)") or leave the flag out and pass --tasks'
        )
    model = args.model_name_or_path
    model_name = args.model_name
    if model is None and args.preset in (None, "none") and capabilities(args.backend).local_weights:
        from qzhou_eval._paths import bundled_model_path

        model, model_name = bundled_model_path(), model_name or DEFAULT_MODEL_NAME
    for flag in ("tasks", "task_types"):
        value = getattr(args, flag)
        if value is not None and not names(value):
            raise InvalidOptionError(
                f"--{flag} {' '.join(value)!r} names nothing; name at least one, or leave the flag out to run the whole "
                "selection"
            )
    tasks = names(args.tasks)
    if benchmark is None and not tasks:
        raise argparse.ArgumentTypeError('pass --benchmark NAME (e.g. "MTEB(eng, v2)") or --tasks NAME[,NAME...]')
    if args.only_available:
        tasks = _available_tasks(args.data_dir, benchmark, tasks)
    cache = args.cache_dir
    return RunConfig(
        model_name_or_path=model,
        benchmark=benchmark,
        output_dir=Path(args.output_dir),
        encoder_options=encoder_options_given(args),
        preset=args.preset,
        use_instruction=args.use_instruction,
        instructions=args.instructions,
        tasks=tasks,
        exclude_tasks=names(args.exclude_tasks),
        task_types=names(args.task_types),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        cache_dir=False if (cache or "").lower() == "none" else (Path(cache) if cache else True),
        overwrite=args.overwrite or args.overwrite_strategy == "always",
        shard=parse_shard(args.shard),
        model_name=model_name,
        device=f"cuda:{args.device}" if str(args.device).isdigit() else args.device,  # mteb run's --device 0
        fail_fast=args.fail_fast,
        backend=args.backend,
        endpoint=endpoint_settings(args),
        revision=args.revision,
        readability=ReadabilityLimits(args.collapse_error, args.readability_warn),
        predictions=args.predictions,
    )


def _available_tasks(data_dir: str | None, benchmark: str | None, tasks: list[str]) -> list[str]:
    """--only_available: the selected tasks that have a folder in --data_dir."""
    from qzhou_eval.benchmarks import benchmark_task_names

    if not data_dir:
        raise argparse.ArgumentTypeError("--only_available needs --data_dir")
    present = {p.name for p in Path(data_dir).iterdir() if p.is_dir()} if Path(data_dir).is_dir() else set()
    candidates = benchmark_task_names(benchmark) if benchmark else tasks
    chosen = [t for t in candidates if t in present and (not tasks or t in tasks)]
    if not chosen:
        raise argparse.ArgumentTypeError(f"no task of {benchmark or tasks} is present in {data_dir}")
    return chosen


def print_summary(summary, suite: str, manifest_file: Path | None = None) -> None:
    """The run's scores on the leaderboard's scale (x100), each with its metric and, where the harness ships
    it, the published score of the same model (so a low but correct number reads as correct)."""
    from qzhou_eval.results.layout import model_name_of
    from qzhou_eval.results.published import published_scores
    from qzhou_eval.runs import manifest as manifests

    manifest = manifests.load(manifest_file) if manifest_file else None
    recorded = manifest.tasks if manifest else {}
    published = published_scores(model_name_of(summary.results_dir.parent.name) or "")
    failed = f", {len(summary.failed)} failed" if summary.failed else ""
    print(f"\n{suite}: {len(summary.scores)} task(s) with results{failed}, in {summary.results_dir}")
    print(f"{'task':<40} {'metric':<18} {'score':>7} {'published':>9}  status")
    for name, score in summary.scores.items():
        status = "ran" if name in summary.ran else "finished earlier"
        metric = (recorded[name].main_metric if name in recorded else None) or "main_score"
        shown = f"{published[name]:.2f}" if name in published else ""
        if name in published and abs(100 * score - published[name]) >= 0.005:
            status += f", {100 * score - published[name]:+.2f} vs published"
        print(f"{name:<40} {metric:<18} {100 * score:>7.2f} {shown:>9}  {status}")
    for name, failure in summary.failed.items():
        print(
            f"{name:<40} {'':<18} {'':>7} {'':>9}  FAILED {failure.error_type}: {failure.message[:80]} (see "
            f"{failure.traceback_file})"
        )
    if published and set(published) & set(summary.scores):
        print("published: the MTEB leaderboard's score of this model (results repository, CC0); equal means reproduced")
    if summary.encode_stats is not None:
        print(f"embeddings: {summary.encode_stats.describe()}")
    if summary.failed:
        print(
            f"{len(summary.failed)} task(s) failed: {', '.join(summary.failed)}; rerun the same command to retry "
            "only what is missing"
        )


def names(values: list[str] | None) -> list[str]:
    """Names given space-separated (mteb's ``-t A B``), comma-separated (the reference's ``--tasks A,B``) or both."""
    return [name for value in values or () for name in parse_list(value)]


def one_benchmark(values: list[str] | None) -> str | None:
    """The benchmark of ``--benchmark``/``-b`` (mteb's ``--benchmarks`` takes a list; a run holds one)."""
    if values is None:
        return None
    if len(values) != 1:
        raise InvalidOptionError(
            f"--benchmarks {values}: one benchmark per run (its manifest and report are per benchmark); run the "
            "command once per benchmark, with the same --output_dir"
        )
    return values[0]


def run(args, benchmark: str | None = None) -> int:
    if hasattr(args, "benchmark"):
        args.benchmark = one_benchmark(args.benchmark)
    benchmark = benchmark or args.benchmark
    config = build_config(args, benchmark)
    from qzhou_eval.runs.resume_check import check_resume  # torch-free; the report commands never import runs/

    summary, spec = check_resume(config)
    if summary is None:
        from qzhou_eval.runs.runner import run_suite  # mteb and torch load only when there is work

        summary = run_suite(config, spec)
    if process_rank() == 0:  # under torchrun every rank holds the same scores; one prints them
        from qzhou_eval.runs.manifest import manifest_path

        print_summary(summary, config.suite, manifest_path(config.output_dir, config.suite))
    return 1 if summary.failed else 0


def main_for_benchmark(benchmark: str, argv: list[str] | None = None) -> int:
    """Entry of run_mteb_all_v2.py / run_cmteb_all.py: the reference flags for one fixed suite."""
    parser = CliParser(description=f"Evaluate a checkpoint on {benchmark} (QZhou protocol).")
    add_arguments(parser, benchmark=benchmark)
    add_verbosity(parser)
    add_kebab_aliases(parser)
    args = parser.parse_args(argv)
    return run_handled(lambda: run(args, benchmark), *verbosity_counts(args))
