"""``qzhou-eval encode``: embed a few texts and show their cosine similarities (a smoke test of a model)."""

from __future__ import annotations

import sys

import numpy as np

from qzhou_eval.errors import InvalidOptionError


def add_parser(sub) -> None:
    p = sub.add_parser("encode", help="embed texts (arguments or stdin lines) and print their cosine matrix")
    p.add_argument("texts", nargs="*", help="texts to embed; read from stdin, one per line, when absent")
    p.add_argument(
        "--model_name_or_path",
        default=None,
        help="checkpoint folder or hub id (default: the packaged all-MiniLM-L6-v2, if installed)",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="qzhou-embedding | qzhou-embedding-zh | none (default: recognised from the checkpoint)",
    )
    p.add_argument("--instruction", default=None, help="task instruction for every text")
    p.add_argument("--pooling_mode", default=None, help="mean | last | cls")
    p.add_argument("--dim", type=int, default=None, help="MRL dimension")
    p.add_argument("--device", default=None)
    p.add_argument("--save", default=None, help="write the embeddings to this .npy file")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval._paths import bundled_model_path
    from qzhou_eval.api import load_encoder  # torch loads only when a command needs a model

    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise InvalidOptionError("no texts given; pass them as arguments or on stdin")
    path = args.model_name_or_path or (None if args.preset not in (None, "none") else bundled_model_path())
    kwargs = {k: v for k, v in {"pooling": args.pooling_mode, "dim": args.dim}.items() if v is not None}
    encoder = load_encoder(path, preset=args.preset, device=args.device, **kwargs)
    embeddings = encoder.encode(texts, instruction=args.instruction)
    if args.save:
        np.save(args.save, embeddings)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    print(f"{len(texts)} texts -> {embeddings.shape[1]}-dim embeddings ({encoder.source.name_or_path})")
    print("cosine similarity:")
    for i, row in enumerate(unit @ unit.T):
        print(f"  [{i}] " + " ".join(f"{v:6.3f}" for v in row) + f"  {texts[i][:50]!r}")
    return 0
