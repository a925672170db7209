"""Bad input at load time gets a specific error that names the fix."""

import pytest

from qzhou_eval import load_encoder
from qzhou_eval.errors import InvalidOptionError, ModelNotFoundError


def test_missing_local_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="looks like a local path but does not exist"):
        load_encoder(str(tmp_path / "no-such-model"))


def test_hub_id_unreachable_offline():
    with pytest.raises(ModelNotFoundError, match="is not a local folder, and as a hub id it could not be fetched"):
        load_encoder("no-such-org/no-such-model-xyz")


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="holds neither config.json nor modules.json"):
        load_encoder(str(tmp_path))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pooling": "max"}, "'max' is not a valid Pooling, must be one of"),
        ({"preset": "qzhou-7b"}, "'qzhou-7b' is not a valid preset, must be one of"),
        ({"dtype": "int8"}, "'int8' is not a valid dtype"),
        ({"dim": 1024}, "larger than the model's output width 384"),
        ({"prompt_template": "no slot"}, "exactly one \\{text\\} slot"),
        ({"token_prepending": True}, "needs a prompt_template that contains the placeholder"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"bidirectional": True}, "bidirectional=True supports model types \\['qwen2', 'qwen3'\\], got 'bert'"),
    ],
)
def test_bad_options(minilm_path, kwargs, match):
    with pytest.raises(InvalidOptionError, match=match):
        load_encoder(minilm_path, **kwargs)


def test_placeholder_must_be_a_token(minilm_path):
    with pytest.raises(InvalidOptionError, match="single token of the tokenizer"):
        load_encoder(minilm_path, prompt_template="<|im_start|> {text}", token_prepending=True)
