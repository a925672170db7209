import math

import pytest
import torch

from qzhou_eval.errors import InvalidOptionError
from qzhou_eval.modeling.mrl import check_dim, truncate_and_normalize
from qzhou_eval.modeling.pooling import Pooling, last_token_index, pool


def _hidden():
    torch.manual_seed(0)
    return torch.randn(2, 5, 4)


def test_mean_over_real_tokens_left_padding():
    hidden = _hidden()
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    out = pool(hidden, mask, Pooling.MEAN)
    assert torch.allclose(out[0], hidden[0, 2:].mean(0)), "row 0 must average its 3 real tokens only"
    assert torch.allclose(out[1], hidden[1].mean(0))


def test_mean_ignores_nan_in_pad_positions():
    hidden = _hidden()
    hidden[0, 0] = math.nan
    mask = torch.tensor([[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    out = pool(hidden, mask, Pooling.MEAN)
    assert torch.isfinite(out).all(), "a NaN in a pad position leaked into the mean"


@pytest.mark.parametrize(
    "mask,expected",
    [([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], [4, 4]), ([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0]], [2, 3])],
    ids=["left-padding", "right-padding"],
)
def test_last_token_for_both_padding_sides(mask, expected):
    hidden = _hidden()
    mask = torch.tensor(mask)
    assert last_token_index(mask).tolist() == expected
    out = pool(hidden, mask, Pooling.LAST)
    assert torch.equal(out, hidden[torch.arange(2), torch.tensor(expected)])


def test_cls_takes_first_real_token():
    hidden = _hidden()
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 0]])
    out = pool(hidden, mask, Pooling.CLS)
    assert torch.equal(out, torch.stack([hidden[0, 2], hidden[1, 0]]))


def test_pooling_names_and_error():
    assert Pooling.from_str("last_token") is Pooling.LAST
    assert Pooling.from_str("MEAN") is Pooling.MEAN
    with pytest.raises(
        InvalidOptionError, match=r"'max' is not a valid Pooling, must be one of \['mean', 'last', 'cls'\]"
    ):
        Pooling.from_str("max")


def test_mrl_slices_before_normalising():
    x = torch.tensor([[3.0, 4.0, 12.0]])
    out = truncate_and_normalize(x, 2, normalize=True)
    assert torch.allclose(out, torch.tensor([[0.6, 0.8]])), "MRL must slice first, then normalise"


def test_mrl_dim_checks():
    assert check_dim(None, 384, None) is None
    assert check_dim(128, 384, None) == 128
    with pytest.raises(InvalidOptionError, match="larger than the model's output width 384"):
        check_dim(512, 384, None)
    with pytest.raises(InvalidOptionError, match=r"valid dims are \[128, 256\]"):
        check_dim(200, 384, [128, 256, 512])
    with pytest.raises(InvalidOptionError, match="positive integer"):
        check_dim(0, 384, None)


@pytest.mark.parametrize("mode", list(Pooling))
def test_a_written_pooling_config_reads_back_as_its_mode(mode):
    from qzhou_eval.modeling.st_layout import _pooling_from_config, pooling_config

    assert _pooling_from_config(pooling_config(mode, 64), "1_Pooling/config.json") is mode
