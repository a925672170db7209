"""Training log (JSONL), throughput in the progress output, and a loss-curve PNG in the output folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback


class LossLogCallback(TrainerCallback):
    """Appends every log to ``training_log.jsonl`` with texts/s, and draws ``loss_curve.png`` at the end."""

    def __init__(self, out: Path, texts_per_step: dict[str, int]) -> None:
        self.out = Path(out)
        self.mean_texts = sum(texts_per_step.values()) / max(len(texts_per_step), 1)
        self.history: list[dict] = []
        self._t0 = None
        self._step0 = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0, self._step0 = time.monotonic(), state.global_step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or logs is None:
            return
        elapsed = max(time.monotonic() - (self._t0 or time.monotonic()), 1e-9)
        logs["texts_per_s"] = round((state.global_step - self._step0) * self.mean_texts / elapsed, 1)
        entry = {"step": state.global_step, **logs}
        self.history.append(entry)
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "training_log.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        points = [(h["step"], h["loss"]) for h in self.history if "loss" in h]
        if not points:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(*zip(*points), marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.out / "loss_curve.png", dpi=110)
        plt.close(fig)
