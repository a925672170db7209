"""``qzhou-eval train CONFIG [key=value ...]``: one stage of the recipe (stage 2 starts from stage 1's output)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train one stage of the QZhou recipe from a YAML config")
    p.add_argument("config", help="reproducibility/train/*.yaml or your own")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_steps=20 output_dir=out/tiny")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval.train.config import TrainConfig
    from qzhou_eval.train.trainer import train

    config = TrainConfig.from_file(args.config, args.overrides)
    out = train(config)
    print(f"trained checkpoint: {out} (evaluate it with --model_name_or_path {out})")
    return 0
