"""``qzhou-eval encode``: embed a few texts and show their cosine similarities (a smoke test of a model)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from qzhou_eval._atomic import atomic_write_bytes
from qzhou_eval.cli.options import add_encoder_flags, encoder_options_given
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.integrity.outputs import check_output


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
    p.add_argument("--device", default=None)
    add_encoder_flags(p)
    p.add_argument("--save", default=None, help="write the embeddings to this .npy file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --save file")
    p.set_defaults(handler=run)


def run(args) -> int:
    from qzhou_eval._paths import bundled_model_path
    from qzhou_eval.api import load_encoder  # torch loads only when a command needs a model

    if args.save:
        if not args.save.endswith(".npy"):
            raise InvalidOptionError(f"--save {args.save}: name a .npy file (numpy adds the suffix otherwise)")
        check_output(args.save, inputs=[args.model_name_or_path], overwrite=args.overwrite, flag="--save")
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise InvalidOptionError("no texts given; pass them as arguments or on stdin")
    path = args.model_name_or_path or (None if args.preset not in (None, "none") else bundled_model_path())
    encoder = load_encoder(path, preset=args.preset, device=args.device, **encoder_options_given(args))
    embeddings = encoder.encode(texts, instruction=args.instruction)
    if args.save:
        atomic_write_bytes(Path(args.save), _npy_bytes(embeddings))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    print(f"{len(texts)} texts -> {embeddings.shape[1]}-dim embeddings ({encoder.source.name_or_path})")
    print("cosine similarity:")
    for i, row in enumerate(unit @ unit.T):
        print(f"  [{i}] " + " ".join(f"{v:6.3f}" for v in row) + f"  {texts[i][:50]!r}")
    return 0


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()
