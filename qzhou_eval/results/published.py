"""Published leaderboard scores shipped with the harness, printed next to a run's own (``results/published/``).

Only what a first run meets: the bundled model on the demo pack's and the offline pack's tasks, so a new
user sees at once that, say, PAWSX 7.21 is the published number and not a failure.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

_FILE = Path(__file__).with_name("published") / "leaderboard-2025-08.json"


@lru_cache(maxsize=1)
def _published() -> dict:
    return json.loads(_FILE.read_text(encoding="utf-8"))["models"]


def published_scores(model_name: str) -> dict[str, float]:
    """{task: published main score x100} for ``model_name`` (empty for a model the file does not hold)."""
    return dict(_published().get(model_name, {}).get("scores", {}))
