"""Per-task instructions and which side (query, document) gets them."""

from qzhou_eval.instructions.registry import InstructionSet, TaskInstruction, load_benchmark_instructions

__all__ = ["InstructionSet", "TaskInstruction", "load_benchmark_instructions"]
