"""Where this process stands in a torchrun launch, read from the launcher's environment (torch-free)."""

from __future__ import annotations

import os


def launched_by_torchrun() -> bool:
    """True in a process that torchrun (or another launcher) started as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_rank() -> int:
    """This process's global rank (0 when not launched as one of several)."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def world_size() -> int:
    """How many ranks this launch has (1 when not launched as one of several)."""
    return int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1
