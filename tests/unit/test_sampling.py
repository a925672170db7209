import pytest

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.train import dataset_weights
from qzhou_eval.train.sampling import GroupedBatches

SIZES = {"msmarco": 40000, "nq": 10000, "hotpot": 2500, "nli": 9000, "cls": 1000}


def test_weights_follow_n_to_the_alpha():
    w = dataset_weights(SIZES, alpha=0.5)
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["msmarco"] / w["nq"] == pytest.approx(2.0), "sqrt(40000)/sqrt(10000)"
    assert dataset_weights(SIZES, alpha=0.0)["cls"] == pytest.approx(0.2)
    assert dataset_weights(SIZES, alpha=1.0)["msmarco"] == pytest.approx(40000 / sum(SIZES.values()))


def test_stage2_fixes_the_retrieval_share():
    w = dataset_weights(SIZES, alpha=0.5, retrieval=["msmarco", "nq", "hotpot"], retrieval_ratio=0.72)
    assert w["msmarco"] + w["nq"] + w["hotpot"] == pytest.approx(0.72)
    assert w["nli"] + w["cls"] == pytest.approx(0.28)
    assert w["msmarco"] / w["hotpot"] == pytest.approx(4.0) and w["nli"] / w["cls"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sizes": {}}, "at least one dataset"),
        ({"sizes": {"a": 0}}, "positive integers"),
        ({"alpha": -1}, "alpha must be >= 0"),
        ({"retrieval": ["nq"], "retrieval_ratio": 1.2}, "must be in \\(0, 1\\)"),
        ({"retrieval": ["nope"], "retrieval_ratio": 0.7}, "not among the datasets"),
        ({"retrieval": list(SIZES), "retrieval_ratio": 0.7}, "both inside and outside"),
    ],
)
def test_weight_errors(kwargs, match):
    args = {"sizes": SIZES, "alpha": 0.5, **kwargs}
    with pytest.raises(InvalidOptionError, match=match):
        dataset_weights(args.pop("sizes"), **args)


def test_empirical_batch_shares_match_the_weights():
    sizes = {"a": 5000, "b": 800, "c": 300}
    weights = dataset_weights(sizes, alpha=0.5, retrieval=["a", "b"], retrieval_ratio=0.72)
    batches = GroupedBatches(sizes, weights, batch_size=16, seed=1)
    names = [name for name, _ in batches.take(20000)]
    for name, p in weights.items():
        share = names.count(name) / len(names)
        assert share == pytest.approx(p, abs=0.01), f"{name}: share {share:.3f} vs weight {p:.3f}"


def test_each_batch_is_one_dataset_read_sequentially():
    batches = GroupedBatches({"a": 10, "b": 7}, {"a": 0.5, "b": 0.5}, batch_size=4, seed=0)
    seen = {"a": [], "b": []}
    for name, rows in batches.take(12):
        assert len(rows) == 4
        seen[name].extend(rows)
    for name, size in (("a", 10), ("b", 7)):
        assert seen[name] == [i % size for i in range(len(seen[name]))], (
            "rows must continue where the last batch stopped"
        )


def test_shuffled_reading_is_a_new_permutation_each_pass():
    batches = GroupedBatches({"a": 12, "b": 8}, {"a": 0.5, "b": 0.5}, batch_size=4, seed=3, shuffle=True)
    seen = {"a": [], "b": []}
    for name, rows in batches.take(30):
        seen[name].extend(rows)
    for name, size in (("a", 12), ("b", 8)):
        passes = [seen[name][i : i + size] for i in range(0, len(seen[name]) - size + 1, size)]
        assert len(passes) >= 2
        assert all(sorted(p) == list(range(size)) for p in passes), "each pass reads every row once"
        assert passes[0] != list(range(size)) and passes[0] != passes[1], "passes are shuffled, differently"


@pytest.mark.parametrize("shuffle", [False, True])
def test_resume_continues_exactly(shuffle):
    sizes, weights = {"a": 50, "b": 30}, {"a": 0.6, "b": 0.4}
    full = GroupedBatches(sizes, weights, batch_size=5, seed=7, shuffle=shuffle)
    expected = list(full.take(40))
    first = GroupedBatches(sizes, weights, batch_size=5, seed=7, shuffle=shuffle)
    head = list(first.take(15))
    state = first.state_dict()
    resumed = GroupedBatches(sizes, weights, batch_size=5, seed=123, shuffle=shuffle)  # the state's seed wins
    resumed.load_state_dict(state)
    assert head + list(resumed.take(25)) == expected
    with pytest.raises(InvalidOptionError, match="resume with the same config"):
        GroupedBatches(sizes, weights, batch_size=4).load_state_dict(state)


def test_batch_larger_than_a_dataset_is_an_error():
    with pytest.raises(InvalidOptionError, match="batch size 64 is larger than dataset\\(s\\) \\{'small': 10\\}"):
        GroupedBatches({"big": 1000, "small": 10}, {"big": 0.5, "small": 0.5}, batch_size=64)
    whole = GroupedBatches({"x": 64}, {"x": 1.0}, batch_size=64)  # exactly one batch: accepted, read whole
    assert [rows for _, rows in whole.take(2)] == [list(range(64))] * 2
