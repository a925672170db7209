"""``qzhou-eval synth CONFIG``: LLM-API synthesis with output checks (resumable: rerun to continue)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("synth", help="synthesise training rows through an OpenAI-compatible endpoint, checked")
    p.add_argument("config", help="YAML synthesis config (see reproducibility/synth/)")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval.train.synth.config import SynthConfig
    from qzhou_eval.train.synth.pipeline import run_synthesis

    config = SynthConfig.from_file(args.config)
    report = run_synthesis(config)
    rejected = sum(n for reasons in report.rejected.values() for n in reasons.values())
    print(f"{sum(report.kept.values())} rows kept {report.kept}, {rejected} rejected {report.rejected}")
    print(
        f"requests: {report.answered_now} answered now, {report.answered_before} from earlier runs, {report.failed} "
        f"failed; {report.http_requests} HTTP requests, retries {report.retries}, {report.tokens} tokens"
        + ("; budget reached: rerun to continue" if report.budget_reached else "")
    )
    print(f"outputs in {config.output_dir}: rows.jsonl, rejected.jsonl, report.json")
    return 3 if report.budget_reached or report.failed else 0
