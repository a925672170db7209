"""The one rule from a model's name to its results folder and back (results/layout.py)."""

from hypothesis import given
from hypothesis import strategies as st

from qzhou_eval.results.layout import model_folder, model_name_of

# hub names: letters, digits, '-', '.', single '_'; an org ending in '_' is the layout's one ambiguity
# ('a_' + '__' + 'b' reads as 'a/_b', as in mteb's own folders), so parts here do not end in '_'
part = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9.-]|_(?!_)){0,20}", fullmatch=True).filter(
    lambda p: "__" not in p and not p.endswith("_")
)


@given(part, part)
def test_a_hub_name_survives_the_round_trip(org, name):
    folder = model_folder(f"{org}/{name}")
    assert "/" not in folder and model_name_of(folder) == f"{org}/{name}"


def test_spaces_and_non_model_folders():
    assert model_folder("org/my model") == "org__my_model"
    assert model_name_of("results") is None and model_name_of("replaced-20260101") is None
    assert model_name_of("a___b") == "a/_b"  # the ambiguous case is read as mteb reads it: the first '__'
