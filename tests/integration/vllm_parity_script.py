"""Run by test_vllm_backend.py in its own process (vLLM starts worker processes: __main__ guard).

    python vllm_parity_script.py OUT.json TEXTS.json NAME=PATH:KEY=VALUE,... [...]

For each model, encodes the texts with the HF and the vLLM backend (float32, same options) and
writes the per-row cosines and the vLLM backend's embedding width to OUT.json.
"""

from __future__ import annotations

import json
import sys


def _options(spec: str) -> dict:
    out = {}
    for pair in filter(None, spec.split(",")):
        key, value = pair.split("=")
        out[key] = {"true": True, "false": False}.get(value, int(value) if value.isdigit() else value)
    return out


def main() -> int:
    import gc

    import numpy as np

    from qzhou_eval import load_encoder

    out_file, texts_file, *models = sys.argv[1:]
    texts = json.loads(open(texts_file, encoding="utf-8").read())
    report = {}
    for entry in models:
        name, rest = entry.split("=", 1)
        path, _, spec = rest.partition(":")
        options = {"dtype": "float32", "preset": "none", **_options(spec)}
        hf = load_encoder(path, **options).encode(texts)
        encoder = load_encoder(path, backend="vllm", **options)
        vllm = encoder.encode(texts)
        cosine = (hf * vllm).sum(1) / np.linalg.norm(hf, axis=1) / np.linalg.norm(vllm, axis=1)
        report[name] = {
            "cosines": cosine.tolist(),
            "width": int(vllm.shape[1]),
            "hf_width": int(hf.shape[1]),
            "norms": np.linalg.norm(vllm, axis=1).tolist(),
        }
        del encoder
        gc.collect()
    with open(out_file, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
