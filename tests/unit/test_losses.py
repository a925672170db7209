"""Each loss against a plain, independent loop implementation on random tensors."""

import math

import pytest
import torch

from qzhou_eval.train.losses import cosent, info_nce


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def naive_info_nce(q, p, n, t, query_negatives=True, labels=None):
    total = 0.0
    B = q.shape[0]
    for i in range(B):
        pos = math.exp(_cos(q[i], p[i]) / t)
        denom = pos
        for j in range(B):
            if j != i and (labels is None or labels[j] != labels[i]):
                denom += math.exp(_cos(q[i], p[j]) / t)
        if n is not None:
            for j in range(B):
                for k in range(n.shape[1]):
                    denom += math.exp(_cos(q[i], n[j, k]) / t)
        if query_negatives:
            for j in range(B):
                if j != i and (labels is None or labels[j] != labels[i]):
                    denom += math.exp(_cos(q[i], q[j]) / t)
        total += -math.log(pos / denom)
    return total / B


@pytest.mark.parametrize("with_negatives", [True, False])
@pytest.mark.parametrize("query_negatives", [True, False])
def test_info_nce_matches_loop(with_negatives, query_negatives):
    torch.manual_seed(0)
    q, p = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)
    n = torch.randn(6, 3, 8, dtype=torch.float64) if with_negatives else None
    got = info_nce(q, p, n, temperature=0.5, query_negatives=query_negatives)
    assert float(got) == pytest.approx(naive_info_nce(q, p, n, 0.5, query_negatives), rel=1e-9)


def test_info_nce_label_mask_matches_loop():
    torch.manual_seed(1)
    q, p = torch.randn(8, 8, dtype=torch.float64), torch.randn(8, 8, dtype=torch.float64)
    n = torch.randn(8, 2, 8, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 3])
    got = info_nce(q, p, n, temperature=0.3, labels=labels)
    assert float(got) == pytest.approx(naive_info_nce(q, p, n, 0.3, True, labels.tolist()), rel=1e-9)
    unmasked = info_nce(q, p, n, temperature=0.3)
    assert float(unmasked) != pytest.approx(float(got)), "the label mask must change the loss"


def test_info_nce_default_temperature_is_002():
    torch.manual_seed(2)
    q, p = torch.randn(4, 8, dtype=torch.float64), torch.randn(4, 8, dtype=torch.float64)
    assert float(info_nce(q, p)) == pytest.approx(naive_info_nce(q, p, None, 0.02), rel=1e-9)


def naive_cosent(a, b, s, scale):
    cos = [_cos(a[i], b[i]) for i in range(len(s))]
    terms = [math.exp(scale * (cos[j] - cos[i])) for i in range(len(s)) for j in range(len(s)) if s[i] > s[j]]
    return math.log(1 + sum(terms))


def test_cosent_matches_loop():
    torch.manual_seed(3)
    a, b = torch.randn(7, 8, dtype=torch.float64), torch.randn(7, 8, dtype=torch.float64)
    s = torch.tensor([0.1, 0.9, 0.5, 0.5, 1.0, 0.0, 0.3], dtype=torch.float64)
    assert float(cosent(a, b, s)) == pytest.approx(naive_cosent(a, b, s.tolist(), 20.0), rel=1e-9)
    assert float(cosent(a, b, s, scale=5.0)) == pytest.approx(naive_cosent(a, b, s.tolist(), 5.0), rel=1e-9)


def test_cosent_agrees_with_sentence_transformers():
    from sentence_transformers.losses import CoSENTLoss

    torch.manual_seed(4)
    a, b, s = torch.randn(5, 8), torch.randn(5, 8), torch.rand(5)
    reference = CoSENTLoss.__new__(CoSENTLoss)
    torch.nn.Module.__init__(reference)
    reference.scale, reference.similarity_fct = 20.0, torch.nn.functional.cosine_similarity
    assert float(cosent(a, b, s)) == pytest.approx(float(reference.compute_loss_from_embeddings([a, b], s)), rel=1e-5)


def test_gradients_flow():
    q = torch.randn(4, 8, requires_grad=True)
    p = torch.randn(4, 8, requires_grad=True)
    info_nce(q, p, torch.randn(4, 2, 8)).backward()
    assert q.grad is not None and p.grad is not None and torch.isfinite(q.grad).all()


def test_info_nce_masks_in_batch_copies_like_a_loop():
    """Rows 0 and 2 share a positive, rows 1 and 3 ask the same query, row 4's negative is row 0's positive.

    Masked for query i: documents and negatives that are a positive of a row asking i's query, and the
    queries of rows whose positive is one of those (so 0 and 2 are not each other's negative queries).
    """
    from qzhou_eval.train.losses import TextKeys

    torch.manual_seed(3)
    q, p = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    n = torch.randn(5, 2, 8, dtype=torch.float64)
    qk, pk = [10, 11, 12, 11, 14], [20, 21, 20, 23, 24]
    nk = [30, 31, 32, 33, 34, 35, 36, 37, 20, 39]
    got = info_nce(q, p, n, temperature=0.4, keys=TextKeys(torch.tensor(qk), torch.tensor(pk), torch.tensor(nk)))
    total = 0.0
    for i in range(5):
        relevant = {pk[r] for r in range(5) if qk[r] == qk[i]}
        pos = math.exp(_cos(q[i], p[i]) / 0.4)
        denom = pos + sum(math.exp(_cos(q[i], p[j]) / 0.4) for j in range(5) if j != i and pk[j] not in relevant)
        flat = n.reshape(10, 8)
        denom += sum(math.exp(_cos(q[i], flat[m]) / 0.4) for m in range(10) if nk[m] not in relevant)
        denom += sum(math.exp(_cos(q[i], q[j]) / 0.4) for j in range(5) if pk[j] not in relevant)
        total += -math.log(pos / denom)
    assert float(got) == pytest.approx(total / 5, rel=1e-9)
    assert float(got) != pytest.approx(float(info_nce(q, p, n, temperature=0.4))), "the copies must change the loss"


def test_text_keys_equal_for_texts_that_normalise_alike():
    from qzhou_eval.train.losses import text_key

    assert text_key("Aspirin  lowers risk.") == text_key("aspirin lowers risk")
    assert text_key("aspirin lowers risk") != text_key("aspirin raises risk")
