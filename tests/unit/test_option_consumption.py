"""Every row of the option table is consumed: set away from its default, it changes what the resolved run hands
the encode path (its identity, its batching or a typed view the encoder reads), or it sits on a named list of
options that only resolution reads."""

from __future__ import annotations

import pytest

from qzhou_eval.option_table import ENCODER_OPTIONS
from qzhou_eval.resolution.resolve import Request, resolve

# Options whose value only resolution reads, and why.
RESOLUTION_ONLY = {
    "mrl_dims": "the dimensions --dim may take: checked against dim and the model's width when it loads",
}
# A value away from the default for each option, with what it needs beside it to be admitted.
ALTERED = {
    "pooling": ({"pooling": "cls"}, {}),
    "normalize": ({"normalize": False}, {}),
    "dim": ({"dim": 128}, {}),
    "max_length": ({"max_length": 64}, {}),
    "lowercase": ({"lowercase": True}, {}),
    "bidirectional": ({"bidirectional": True}, {}),
    "prompt_template": ({"prompt_template": "x {text}"}, {}),
    "token_prepending": ({"token_prepending": True}, {"prompt_template": "<|im_start|> {text}"}),
    "token_prepending_layers": (
        {"token_prepending_layers": "2-3"},
        {"token_prepending": True, "prompt_template": "<|im_start|> {text}"},
    ),
    "dtype": ({"dtype": "bfloat16"}, {}),
    "batching": ({"batching": "reference"}, {}),
    "reference_gpus": ({"reference_gpus": 2}, {"batching": "reference"}),
    "batch_size": ({"batch_size": 3}, {}),
    "max_tokens_per_batch": ({"max_tokens_per_batch": 0}, {}),
    "pad_to_multiple_of": ({"pad_to_multiple_of": 8}, {}),
    "trust_remote_code": ({"trust_remote_code": True}, {}),
}


def _handed_on(spec) -> tuple:
    """What the resolved run hands the encode path and the records."""
    views = (
        spec.pooling,
        spec.normalize,
        spec.dim,
        spec.max_length,
        spec.bidirectional,
        spec.prompt_template,
        spec.lowercase,
        spec.token_prepending,
        spec.token_prepending_layers,
        spec.trust_remote_code,
    )
    return views, spec.identity_options(), spec.batching, spec.dtype


def test_every_option_is_altered_here_or_named_as_resolution_only():
    names = {spec.name for spec in ENCODER_OPTIONS}
    assert set(ALTERED) | set(RESOLUTION_ONLY) == names, "add the new option to ALTERED (or RESOLUTION_ONLY, why)"
    assert not set(ALTERED) & set(RESOLUTION_ONLY)


@pytest.mark.parametrize("name", sorted(ALTERED))
def test_an_option_set_away_from_its_default_reaches_the_spec(name, minilm_path):
    altered, beside = ALTERED[name]
    base = resolve(Request(minilm_path, options=beside, device="cpu", ranks=1))
    changed = resolve(Request(minilm_path, options={**beside, **altered}, device="cpu", ranks=1))
    assert changed.options.source(name) == "explicit"
    assert _handed_on(changed) != _handed_on(base), f"{name} is resolved but nothing reads it"
