"""Instruction files: load, validate, look up the exact prefix per task and side, check coverage.

File schema (JSON or YAML)::

    {"benchmark": "MTEB(eng, v2)",             # optional
     "template": "Instruct: {instruction}\\nQuery: ",   # optional, this is the default
     "tasks": {"ArguAna": {"instruction": "...", "documents": true}, ...}}

The reference scripts' shape is accepted too: ``{"TaskName": "instruction", ...}`` with an optional
``"document_side_tasks": [...]`` list. An empty instruction means "no instruction" on both sides
(the reference's ``get_detailed_instruct('')`` returns ``''``).

Bundled files under ``task_instructions/`` also name their ``"variant"``; a variant file may
``"extends"`` another variant of the same benchmark and list only the tasks it changes. The
``reference`` variant is the current public reference scripts; ``leaderboard-2025-08`` is what the
published August 2025 run used.
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
from qzhou_eval.integrity.files import parse_yaml, read_text

# The variant a run uses when neither --instructions nor a preset names one.
DEFAULT_VARIANT = "reference"
_FILE_SUFFIXES = (".json", ".yaml", ".yml")
_TASKS_SCHEMA_KEYS = frozenset({"benchmark", "template", "tasks", "source", "variant", "extends", "_path"})


QUERY, DOCUMENT = "query", "document"


@dataclass(frozen=True)
class TaskInstruction:
    """One task's instruction and whether its documents are instructed too."""

    instruction: str
    documents: bool = False

    def prefix(self, template: str, side: str) -> str:
        """The one rule, for evaluation and training alike: a query always gets the instruction, a document only
        when the task is on the document-side (symmetric) list; an empty instruction is no prefix."""
        if side not in (QUERY, DOCUMENT):
            raise InvalidOptionError.for_choice("instruction side", side, [QUERY, DOCUMENT])
        instructed = side == QUERY or self.documents
        return format_instruction(template, self.instruction) if instructed and self.instruction else ""


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
        variant: str | None = None,
    ) -> None:
        if "{instruction}" not in template:
            raise InstructionError(f"instruction template in {origin} has no '{{instruction}}' slot: {template!r}")
        self.tasks = dict(tasks)
        self.template = template
        self.benchmark = benchmark
        self.origin = origin
        self.variant = variant

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
        return cls.from_dict(_read_file(path), origin=str(path), user_file=True)

    @classmethod
    def from_dict(cls, data: Any, origin: str = "<memory>", user_file: bool = False) -> InstructionSet:
        """Build from the parsed file content (either accepted schema).

        A user's file may not use the bundled files' ``variant`` / ``extends`` keys, and every key of
        the ``tasks`` schema must be known: a misspelt key is an error, never silently ignored.
        """
        if not isinstance(data, dict):
            raise InstructionError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
        template = data.get("template", INSTRUCTION_TEMPLATE)
        if not isinstance(template, str):
            raise InstructionError(
                f"{origin}: 'template' must be a string with an '{{instruction}}' slot, got {template!r}"
            )
        bundled_only = sorted({"variant", "extends"} & set(data)) if user_file else []
        if bundled_only:
            raise InstructionError(
                f"{origin}: {bundled_only} are keys of the bundled variant files only; a file of your own lists every "
                "task it instructs (copy the bundled file and edit it)"
            )
        if "tasks" in data:
            raw = data["tasks"]
            if not isinstance(raw, dict):
                raise InstructionError(f"{origin}: 'tasks' must map task names to entries")
            unknown = sorted(set(data) - _TASKS_SCHEMA_KEYS)
            if unknown:
                raise InstructionError(
                    f"{origin}: unknown top-level key(s) {unknown}; valid: {sorted(_TASKS_SCHEMA_KEYS)}"
                )
            tasks = {name: _parse_entry(name, entry, origin) for name, entry in raw.items()}
        else:
            doc_side_raw = data.get("document_side_tasks", [])
            if not isinstance(doc_side_raw, list) or not all(isinstance(t, str) for t in doc_side_raw):
                raise InstructionError(
                    f"{origin}: 'document_side_tasks' must be a list of task names, got {doc_side_raw!r}"
                )
            doc_side = set(doc_side_raw)
            raw = {
                k: v
                for k, v in data.items()
                if k not in ("template", "benchmark", "source", "document_side_tasks", "variant", "extends")
            }
            tasks = {
                name: _parse_entry(name, {"instruction": v, "documents": name in doc_side}, origin)
                for name, v in raw.items()
            }
            unknown = doc_side - set(tasks)
            if unknown:
                raise InstructionError(
                    f"{origin}: document_side_tasks names tasks with no instruction: {sorted(unknown)}"
                )
        return cls(
            tasks, template=template, benchmark=data.get("benchmark"), origin=origin, variant=data.get("variant")
        )

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
        """Queries always get the task's instruction (none when the instruction is empty)."""
        return self.entry(task_name).prefix(self.template, QUERY)

    def document_prefix(self, task_name: str) -> str:
        """Documents get it only when the task is on the document-side (symmetric) list."""
        return self.entry(task_name).prefix(self.template, DOCUMENT)

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
        payload = {
            "template": self.template,
            "tasks": {k: [v.instruction, v.documents] for k, v in sorted(self.tasks.items())},
        }
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _parse_entry(name: str, entry: Any, origin: str) -> TaskInstruction:
    if isinstance(entry, str):
        entry = {"instruction": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("instruction"), str):
        raise InstructionError(f"{origin}: task {name!r} needs a string 'instruction', got {entry!r}")
    unknown = sorted(set(entry) - {"instruction", "documents"})
    if unknown:
        raise InstructionError(f"{origin}: task {name!r} has unknown key(s) {unknown}; valid: instruction, documents")
    documents = entry.get("documents", False)
    if not isinstance(documents, bool):
        raise InstructionError(f"{origin}: task {name!r} 'documents' must be true or false, got {documents!r}")
    return TaskInstruction(entry["instruction"], documents)


def route_prefix(
    instructions: InstructionSet | None, task_name: str, prompt_type: str | None, use_instruction: bool
) -> str:
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


def _read_file(path: Path) -> Any:
    text = read_text(path, "instruction file", InstructionError)
    if path.suffix.lower() in (".yaml", ".yml"):
        return parse_yaml(text, f"instruction file {path}", InstructionError)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:
        raise InstructionError(
            f"instruction file {str(path)!r} cannot be parsed ({exc}); fix the file, or pass a "
            f"bundled variant name ({', '.join(available_variants())})"
        ) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice; keep one")
        out[key] = value
    return out


def _bundled_index() -> dict[tuple[str, str], dict[str, Any]]:
    """(benchmark, variant) -> the parsed bundled file; every file names its benchmark."""
    index = {}
    for path in sorted(data_dir("task_instructions").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["_path"] = path
        index[(data["benchmark"], data.get("variant", DEFAULT_VARIANT))] = data
    return index


def bundled_benchmarks() -> list[str]:
    """Benchmarks with bundled QZhou instructions."""
    return sorted({benchmark for benchmark, _ in _bundled_index()})


def available_variants(benchmark: str | None = None) -> list[str]:
    """Instruction variants bundled for ``benchmark`` (or for any benchmark)."""
    return sorted({v for b, v in _bundled_index() if benchmark is None or b == benchmark})


def load_benchmark_instructions(benchmark: str, variant: str = DEFAULT_VARIANT) -> InstructionSet:
    """The bundled QZhou instruction set of an mteb benchmark, in one of its variants.

    Raises:
        InvalidOptionError: for a benchmark or variant without a bundled file, listing those that exist.
    """
    index = _bundled_index()
    if not any(b == benchmark for b, _ in index):
        raise InvalidOptionError(
            f"{benchmark!r} has no bundled QZhou instructions (bundled: {bundled_benchmarks()}); pass "
            "--instructions FILE with one per task, or --use_instruction false"
        )
    if (benchmark, variant) not in index:
        raise InvalidOptionError.for_choice(
            f"instruction variant of {benchmark}", variant, available_variants(benchmark)
        )
    data = index[(benchmark, variant)]
    origin = f"{data['_path']} (variant {variant})"
    if "extends" not in data:
        return InstructionSet.from_dict(data, origin=origin)
    base = load_benchmark_instructions(benchmark, data["extends"])
    changes = InstructionSet.from_dict({"tasks": data.get("tasks", {})}, origin=origin).tasks
    unknown = sorted(set(changes) - set(base.tasks))
    if unknown:
        raise InstructionError(f"{origin} changes tasks its base variant does not have: {unknown}")
    return InstructionSet(
        {**base.tasks, **changes}, template=base.template, benchmark=benchmark, origin=origin, variant=variant
    )


def is_instruction_file(spec: str | Path) -> bool:
    """An --instructions value names a file (rather than a variant) when it looks like one."""
    return Path(spec).suffix.lower() in _FILE_SUFFIXES or Path(spec).is_file()


def resolve_instructions(benchmark: str | None, spec: str | Path | None, tasks: Iterable[str] = ()) -> InstructionSet:
    """The instruction set for ``--instructions`` ``spec``: a file, a variant name, or None (the default variant).

    With no benchmark (a run of named tasks), the bundled benchmark whose set of that variant covers
    every task is used.

    Raises:
        InstructionError: a missing file, or no bundled set covering the tasks.
        InvalidOptionError: an unknown variant (listing the valid ones).
    """
    if spec is not None and is_instruction_file(spec):
        return InstructionSet.from_file(spec)
    variant = str(spec) if spec is not None else DEFAULT_VARIANT
    if variant not in available_variants():
        raise InvalidOptionError.for_choice(
            "instruction variant (or an instruction file path)", variant, available_variants()
        )
    if benchmark is not None:
        return load_benchmark_instructions(benchmark, variant)
    names = set(tasks)
    for candidate in bundled_benchmarks():
        if variant in available_variants(candidate):
            found = load_benchmark_instructions(candidate, variant)
            if names <= set(found.tasks):
                return found
    raise InstructionError(
        f"no bundled instruction set covers the task(s) {sorted(names)}; pass --instructions FILE with an "
        "instruction for each, or run without instructions (--use_instruction false)"
    )
