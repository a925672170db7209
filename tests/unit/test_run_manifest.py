"""The typed run manifest round-trips every manifest, keeps what it does not know, and refuses other shapes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qzhou_eval.errors import ManifestError
from qzhou_eval.run_manifest import RunManifest, TaskEntry, manifest_filename

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
_entry = st.fixed_dictionaries(
    {"status": st.sampled_from(["finished", "failed"])},
    optional={"main_score": st.floats(0, 1), "main_metric": st.text(max_size=8), "future_key": _json},
)


@given(
    header=st.dictionaries(st.sampled_from(["benchmark", "backend", "dtype", "later_field"]), st.text(max_size=6)),
    model=st.dictionaries(st.sampled_from(["name", "revision", "hub_revision", "new_key"]), st.text(max_size=6)),
    tasks=st.dictionaries(st.text(min_size=1, max_size=6), _entry, max_size=3),
)
def test_a_manifest_survives_a_round_trip_with_keys_this_version_does_not_know(header, model, tasks):
    record = {**header, "model": model, "tasks": tasks}
    again = RunManifest.from_record(json.loads(json.dumps(record))).as_record()
    for key, value in header.items():
        assert again[key] == value
    assert {k: v for k, v in again["model"].items() if v is not None} == model
    assert again["tasks"] == tasks


@pytest.mark.parametrize("bad", [[], "x", {"tasks": []}, {"model": "m"}, {"tasks": {"STS12": 3}}])
def test_other_shapes_are_refused(bad):
    with pytest.raises(ManifestError):
        RunManifest.from_record(bad)


def test_reading_never_raises_and_never_moves_a_file(tmp_path):
    path = tmp_path / manifest_filename("MTEB(eng, v2)")
    assert path.name == "qzhou-run-MTEB-eng-v2.json" and RunManifest.read(path) is None
    path.write_text("{not json")
    assert RunManifest.read(path) is None and path.read_text() == "{not json"
    path.write_text(json.dumps({"benchmark": "MTEB(eng, v2)", "tasks": {"STS12": {"status": "finished"}}}))
    assert RunManifest.read(path).tasks == {"STS12": TaskEntry("finished")}
