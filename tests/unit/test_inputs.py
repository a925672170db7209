import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qzhou_eval.constants import PROMPTEOL_TEMPLATE
from qzhou_eval.encoder.batching import cut_by_budget
from qzhou_eval.encoder.inputs import InputFormatter
from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.presets import available_presets, load_preset


def test_empty_text_becomes_null_logged_once(caplog):
    fmt = InputFormatter(None)
    with caplog.at_level(logging.WARNING, logger="qzhou_eval"):
        assert fmt(["", "a", ""], "P: ") == ["P: Null", "P: a", "P: Null"]
        fmt([""])
    assert sum("replaced by 'Null'" in r.message for r in caplog.records) == 1
    assert "2 empty text(s)" in caplog.records[0].message


@pytest.mark.parametrize("bad,index", [(["a", None], 1), ([3, "b"], 0), (["a", "b", b"x"], 2)])
def test_non_string_names_the_index(bad, index):
    with pytest.raises(TypeError, match=rf"texts\[{index}\] is"):
        InputFormatter(None)(bad)


def test_prefix_goes_inside_the_prompteol_slot():
    out = InputFormatter(PROMPTEOL_TEMPLATE)(["光合作用是什么？"], "Instruct: X\nQuery: ")
    assert out == [
        "This sentence: <|im_start|>\u201cInstruct: X\nQuery: 光合作用是什么？\u201d means in one word: \u201c"
    ]


def test_template_braces_in_text_are_literal():
    assert InputFormatter("<{text}>")(["{a} {text}"]) == ["<{a} {text}>"]


@pytest.mark.parametrize("template", ["no slot", "{text} and {text}", 5])
def test_template_needs_one_slot(template):
    with pytest.raises(InvalidOptionError, match="exactly one \\{text\\} slot"):
        InputFormatter(template)


def test_budget_cut_fills_batches_up_to_the_padded_token_budget():
    assert cut_by_budget([5, 5, 3, 3, 1], max_rows=4, max_tokens=10, min_fill=0) == [[0, 1], [2, 3, 4]]
    assert cut_by_budget([5, 5, 3, 3, 1], max_rows=4, max_tokens=10) == [[0, 1], [2, 3], [4]], "1 in a 3-wide batch"


@given(
    st.lists(st.integers(1, 600), min_size=1, max_size=200).map(lambda v: sorted(v, reverse=True)),
    st.integers(1, 64),
    st.integers(600, 5000),
)
def test_budget_batches_keep_every_text_once_within_budget_and_fill(lengths, max_rows, max_tokens):
    batches = cut_by_budget(lengths, max_rows, max_tokens)
    assert [i for b in batches for i in b] == list(range(len(lengths)))
    for b in batches:
        padded = lengths[b[0]] * len(b)
        assert len(b) <= max_rows and (padded <= max_tokens or len(b) == 1)
        assert sum(lengths[i] for i in b) >= 0.97 * padded, "no batch computes more than 3 % padding"


def test_presets_hold_the_published_settings():
    assert available_presets() == ["qzhou-embedding", "qzhou-embedding-zh"]
    en = load_preset("qzhou-embedding").options
    assert (en["pooling"], en["bidirectional"], en["max_length"], en["normalize"]) == ("mean", True, 1024, True)
    zh = load_preset("qzhou-embedding-zh").options
    assert zh["prompt_template"] == PROMPTEOL_TEMPLATE
    assert (zh["pooling"], zh["token_prepending"], zh["dim"]) == ("last", True, 1792)
    assert zh["mrl_dims"] == [128, 256, 512, 768, 1024, 1280, 1536, 1792]
    with pytest.raises(InvalidOptionError, match="'qzhou' is not a valid preset, must be one of"):
        load_preset("qzhou")
