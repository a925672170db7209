"""mteb gives the same scores whether a dataset column is datasets' lazy Column or a list (the runner's fast path)."""

from __future__ import annotations

import pytest

from qzhou_eval.runs.column_lists import columns_as_lists


def _local_task(name: str, folder):
    import mteb

    from qzhou_eval.runs.offline import attach_data_dir

    task = mteb.get_task(name)
    attach_data_dir([task], folder.parent)  # this task object only (mteb shares metadata objects)
    return task


def test_columns_are_lists_only_inside_the_block(copy_task, tmp_path):
    import datasets

    folder = copy_task("Banking77Classification", tmp_path, rows=50)
    ds = datasets.load_dataset("json", data_files=str(folder / "test.jsonl.gz"))["train"]
    assert isinstance(ds["label"], datasets.Column)
    with columns_as_lists():
        labels = ds["label"]
        assert isinstance(labels, list) and labels == list(ds.with_format("arrow")["label"].to_pylist())
        assert isinstance(ds.with_format("numpy")["label"].tolist(), list)  # numpy format: one array
        assert isinstance(ds.with_format("arrow")["label"], datasets.Column) is False
    assert isinstance(ds["label"], datasets.Column)
    with pytest.raises(RuntimeError), columns_as_lists():
        raise RuntimeError("a failing task")
    assert isinstance(ds["label"], datasets.Column)  # restored after an error too


@pytest.mark.parametrize("name", ["Banking77Classification", "LCQMC", "STSBenchmark", "SciFact"])
def test_mteb_scores_do_not_depend_on_the_column_type(name, copy_task, tmp_path, monkeypatch):
    import datasets.config
    import mteb

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")  # the cut copies, not a cached full one

    model = mteb.get_model("mteb/baseline-random-encoder", embed_dim=10)  # content-seeded vectors, no weights
    scores = []
    for label, context in (("lazy", None), ("lists", columns_as_lists)):
        task = _local_task(name, copy_task(name, tmp_path / label, rows=300))
        if context is None:
            result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False, raise_error=True)
        else:
            with context():
                result = mteb.evaluate(model, tasks=[task], cache=None, show_progress_bar=False, raise_error=True)
        scores.append(result.task_results[0].scores)
    assert scores[0] == scores[1]
