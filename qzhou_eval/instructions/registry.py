"""Instruction files: load, validate, look up the exact prefix per task and side, check coverage.

File schema (JSON or YAML)::

    {"benchmark": "MTEB(eng, v2)",             # optional
     "template": "Instruct: {instruction}\\nQuery: ",   # optional, this is the default
     "tasks": {"ArguAna": {"instruction": "...", "documents": true}, ...}}

The reference scripts' shape is accepted too: ``{"TaskName": "instruction", ...}`` with an optional
``"document_side_tasks": [...]`` list.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qzhou_eval._paths import data_dir
from qzhou_eval.constants import INSTRUCTION_TEMPLATE
from qzhou_eval.errors import InstructionError, InvalidOptionError

# Benchmark name -> bundled file under task_instructions/.
BUNDLED_FILES = {
    "MTEB(eng, v2)": "mteb_eng_v2.json",
    "MTEB(cmn, v1)": "mteb_cmn_v1.json",
}


@dataclass(frozen=True)
class TaskInstruction:
    """One task's instruction and whether its documents are instructed too."""

    instruction: str
    documents: bool = False


def format_instruction(template: str, instruction: str) -> str:
    """Fill ``{instruction}`` into the template (no other fields are interpreted)."""
    return template.replace("{instruction}", instruction)


class InstructionSet:
    """Task -> prefix lookup for queries and documents.

    Example:
        >>> s = load_benchmark_instructions("MTEB(eng, v2)")
        >>> s.document_prefix("ArguAna").startswith("Instruct: ")
        True
    """

    def __init__(
        self,
        tasks: dict[str, TaskInstruction],
        template: str = INSTRUCTION_TEMPLATE,
        benchmark: str | None = None,
        origin: str = "<memory>",
    ) -> None:
        if "{instruction}" not in template:
            raise InstructionError(f"instruction template in {origin} has no '{{instruction}}' slot: {template!r}")
        self.tasks = dict(tasks)
        self.template = template
        self.benchmark = benchmark
        self.origin = origin

    # --- loading -----------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> InstructionSet:
        """Load a JSON or YAML instruction file.

        Raises:
            InstructionError: naming the file and what is wrong in it.
        """
        path = Path(path)
        if not path.is_file():
            raise InstructionError(f"instruction file {str(path)!r} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:
            raise InstructionError(f"instruction file {str(path)!r} cannot be parsed: {exc}") from exc
        return cls.from_dict(data, origin=str(path))

    @classmethod
    def from_dict(cls, data: Any, origin: str = "<memory>") -> InstructionSet:
        """Build from the parsed file content (either accepted schema)."""
        if not isinstance(data, dict):
            raise InstructionError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
        template = data.get("template", INSTRUCTION_TEMPLATE)
        if "tasks" in data:
            raw = data["tasks"]
            if not isinstance(raw, dict):
                raise InstructionError(f"{origin}: 'tasks' must map task names to entries")
            tasks = {name: _parse_entry(name, entry, origin) for name, entry in raw.items()}
        else:
            doc_side = set(data.get("document_side_tasks", []))
            raw = {k: v for k, v in data.items() if k not in ("template", "benchmark", "source", "document_side_tasks")}
            tasks = {name: _parse_entry(name, {"instruction": v, "documents": name in doc_side}, origin)
                     for name, v in raw.items()}
            unknown = doc_side - set(tasks)
            if unknown:
                raise InstructionError(f"{origin}: document_side_tasks names tasks with no instruction: {sorted(unknown)}")
        return cls(tasks, template=template, benchmark=data.get("benchmark"), origin=origin)

    # --- lookup ------------------------------------------------------------------------------
    def __contains__(self, task_name: str) -> bool:
        return task_name in self.tasks

    def entry(self, task_name: str) -> TaskInstruction:
        try:
            return self.tasks[task_name]
        except KeyError:
            close = difflib.get_close_matches(task_name, list(self.tasks), n=3)
            hint = f" (closest: {close})" if close else ""
            raise InstructionError(
                f"task {task_name!r} has no instruction in {self.origin}{hint}; add it to the file, "
                "pass --instructions FILE, or run without instructions"
            ) from None

    def query_prefix(self, task_name: str) -> str:
        """Queries always get the task's instruction."""
        return format_instruction(self.template, self.entry(task_name).instruction)

    def document_prefix(self, task_name: str) -> str:
        """Documents get it only when the task is on the document-side (symmetric) list."""
        entry = self.entry(task_name)
        return format_instruction(self.template, entry.instruction) if entry.documents else ""

    def check_coverage(self, task_names: Iterable[str]) -> None:
        """Raise before any encoding when some tasks have no instruction, naming all of them."""
        missing = sorted(set(task_names) - set(self.tasks))
        if missing:
            raise InstructionError(
                f"{len(missing)} task(s) have no instruction in {self.origin}: {missing}; add them or pass "
                "another --instructions file"
            )

    def sha256(self) -> str:
        """Content hash (for run manifests and cache keys)."""
        payload = {"template": self.template, "tasks": {k: [v.instruction, v.documents] for k, v in sorted(self.tasks.items())}}
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _parse_entry(name: str, entry: Any, origin: str) -> TaskInstruction:
    if isinstance(entry, str):
        entry = {"instruction": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("instruction"), str):
        raise InstructionError(f"{origin}: task {name!r} needs a string 'instruction', got {entry!r}")
    documents = entry.get("documents", False)
    if not isinstance(documents, bool):
        raise InstructionError(f"{origin}: task {name!r} 'documents' must be true or false, got {documents!r}")
    return TaskInstruction(entry["instruction"], documents)


def route_prefix(instructions: InstructionSet | None, task_name: str, prompt_type: str | None, use_instruction: bool) -> str:
    """The exact prefix a text of ``task_name`` gets on side ``prompt_type`` (the reference scripts' rule).

    A query always gets its task's instruction; a document, or an input mteb marks with no prompt type
    (STS, classification, clustering, ...), gets it only when the task is on the document-side list.
    ``prompt_type`` is mteb's ``PromptType`` or its string value.
    """
    if not use_instruction:
        return ""
    if instructions is None:
        raise InvalidOptionError("use_instruction=True needs an InstructionSet")
    side = getattr(prompt_type, "value", prompt_type)
    if side == "query":
        return instructions.query_prefix(task_name)
    if side not in (None, "document"):
        raise InvalidOptionError.for_choice("prompt type", side, ["query", "document", None])
    return instructions.document_prefix(task_name)


def load_benchmark_instructions(benchmark: str) -> InstructionSet:
    """The bundled QZhou instruction file of an mteb benchmark.

    Raises:
        InvalidOptionError: for a benchmark without a bundled file, listing those that have one.
    """
    if benchmark not in BUNDLED_FILES:
        raise InvalidOptionError.for_choice("benchmark with bundled instructions", benchmark, list(BUNDLED_FILES))
    return InstructionSet.from_file(data_dir("task_instructions") / BUNDLED_FILES[benchmark])


def benchmark_task_names(benchmark: str) -> list[str]:
    """Task names of an mteb benchmark, in the benchmark's order."""
    import mteb

    try:
        bench = mteb.get_benchmark(benchmark)
    except Exception as exc:
        raise InvalidOptionError(f"mteb does not know the benchmark {benchmark!r}: {exc}") from exc
    return [task.metadata.name for task in bench.tasks]
