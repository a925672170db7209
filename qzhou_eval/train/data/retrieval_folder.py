"""A retrieval dataset on disk (corpus, queries, qrels of one split) as typed objects, for mining and cleaning.

Two layouts are read:

- mteb's task folder (``../shared/mteb-data/SciFact``): a ``README.md`` whose YAML ``configs`` list the
  ``corpus`` and ``queries`` configs and the qrels (``default``) per split. The corpus is shared by every
  split, so a corpus listed only under ``test`` serves ``train`` too.
- plain files (BEIR's layout): ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.jsonl`` or ``.tsv``
  (each also ``.gz``).

A document's text is its title and text joined by a space, as mteb gives it to a model.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from qzhou_eval.errors import DataDirError, InvalidOptionError
from qzhou_eval.integrity.dataset_readme import readme_configs


@dataclass(frozen=True)
class RetrievalData:
    """One split: every document, the split's queries that have a relevant document, and the relevant pairs."""

    corpus: dict[str, str]  # doc id -> "title text"
    queries: dict[str, str]  # query id -> text
    relevant: dict[str, list[str]]  # query id -> relevant doc ids (qrels score > 0), in file order


def _open(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def _json_lines(path: Path) -> Iterator[tuple[str, dict]]:
    with _open(path) as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield f"{path}:{number}", json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidOptionError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _qrel_lines(path: Path) -> Iterator[tuple[str, dict]]:
    if ".tsv" not in path.suffixes:
        yield from _json_lines(path)
        return
    with _open(path) as fh:
        for number, row in enumerate(csv.DictReader(fh, delimiter="\t"), start=2):
            yield f"{path}:{number}", row


def _field(record: dict, names: tuple[str, ...], where: str) -> str:
    for name in names:
        if record.get(name) is not None:
            return str(record[name])
    raise InvalidOptionError(f"{where}: needs one of the fields {list(names)}; it has {sorted(record)}")


def _document(record: dict, where: str) -> tuple[str, str]:
    text = _field(record, ("text",), where)
    title = str(record.get("title") or "").strip()
    return _field(record, ("_id", "id"), where), f"{title} {text}".strip() if title else text


def _files(folder: Path, split: str) -> tuple[list[Path], list[Path], list[Path]]:
    """Corpus, queries and qrels files of ``split`` in either layout."""
    if (folder / "README.md").is_file():
        try:
            configs = readme_configs(folder)
        except DataDirError as exc:
            raise InvalidOptionError(str(exc)) from None
        corpus = configs.get("corpus", {})
        corpus_files = corpus.get(split) or sorted({p for files in corpus.values() for p in files})
        queries = configs.get("queries", {}).get(split, [])
        qrels = configs.get("default", {}).get(split, [])
        return corpus_files, queries, qrels

    def one(*names: str) -> list[Path]:
        return [p for name in names for p in [folder / name, folder / f"{name}.gz"] if p.is_file()][:1]

    return (one("corpus.jsonl"), one("queries.jsonl"), one(f"qrels/{split}.jsonl", f"qrels/{split}.tsv"))


def read_retrieval_folder(folder: str | Path, split: str) -> RetrievalData:
    """Corpus, queries and qrels of ``split``.

    Raises:
        InvalidOptionError: a missing folder, file or field, naming it and the layouts read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidOptionError(
            f"--data_dir {folder} is not a folder; pass a retrieval task folder "
            "(mteb layout with README.md, or corpus.jsonl + queries.jsonl + qrels/<split>.jsonl)"
        )
    corpus_files, query_files, qrel_files = _files(folder, split)
    for what, files in (("corpus", corpus_files), ("queries", query_files), (f"qrels of split {split!r}", qrel_files)):
        if not files:
            raise InvalidOptionError(
                f"{folder} has no {what}; expected mteb's layout (README.md configs 'corpus', "
                f"'queries', 'default' with split {split!r}) or corpus.jsonl, queries.jsonl and "
                f"qrels/{split}.jsonl"
            )
    corpus = dict(_document(r, w) for path in corpus_files for w, r in _json_lines(path))
    all_queries = {
        _field(r, ("_id", "id"), w): _field(r, ("text",), w) for path in query_files for w, r in _json_lines(path)
    }
    relevant: dict[str, list[str]] = {}
    for path in qrel_files:
        for where, row in _qrel_lines(path):
            query_id, doc_id = (
                _field(row, ("query-id", "query_id"), where),
                _field(row, ("corpus-id", "corpus_id"), where),
            )
            if float(row.get("score", 1)) <= 0:
                continue
            if query_id not in all_queries or doc_id not in corpus:
                missing = "query" if query_id not in all_queries else "document"
                raise InvalidOptionError(
                    f"{where}: qrels name {missing} {query_id if missing == 'query' else doc_id!r} "
                    f"that the {missing} file(s) do not hold"
                )
            if doc_id not in relevant.setdefault(query_id, []):
                relevant[query_id].append(doc_id)
    if not relevant:
        raise InvalidOptionError(f"{folder}: the qrels of split {split!r} name no relevant (score > 0) pair")
    return RetrievalData(corpus, {q: all_queries[q] for q in relevant}, relevant)
