"""Tiny random Qwen2/Qwen3 checkpoints against independent per-text forward passes.

The references below never use qzhou-eval's hooks or mask switches: bidirectional attention is
obtained by handing a fresh model an explicit all-visible 4D mask, and Token Prepending by running
the decoder layers one by one by hand.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from qzhou_eval import load_encoder
from qzhou_eval.constants import PROMPTEOL_TEMPLATE, TOKEN_PREPENDING_LAYERS
from qzhou_eval.errors import EmbeddingError

TOL = 1e-5


def _fresh(path):
    return AutoModel.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()


def _ids(path, text):
    return AutoTokenizer.from_pretrained(path)(text, return_tensors="pt")["input_ids"]


@torch.no_grad()
def reference_bidirectional_mean(path, texts):
    model = _fresh(path)
    out = []
    for text in texts:
        ids = _ids(path, text)
        n = ids.shape[1]
        visible = torch.zeros(1, 1, n, n)  # additive mask: every token sees every token
        hidden = model(input_ids=ids, attention_mask={"full_attention": visible, "sliding_attention": visible})
        out.append(F.normalize(hidden.last_hidden_state.mean(dim=1), dim=-1)[0])
    return torch.stack(out).numpy()


@torch.no_grad()
def reference_causal_last(path, texts, normalize=True):
    model = _fresh(path)
    out = []
    for text in texts:
        last = model(input_ids=_ids(path, text)).last_hidden_state[0, -1]
        out.append(F.normalize(last, dim=-1) if normalize else last)
    return torch.stack(out).numpy()


@torch.no_grad()
def reference_token_prepending_last(path, texts, layers=TOKEN_PREPENDING_LAYERS):
    """Layer-by-layer causal forward; before each of ``layers`` the placeholder slot gets the last token's state."""
    model = _fresh(path)
    placeholder = AutoTokenizer.from_pretrained(path).convert_tokens_to_ids("<|im_start|>")
    out = []
    for text in texts:
        ids = _ids(path, text)
        n = ids.shape[1]
        slot = int((ids[0] == placeholder).nonzero()[0])
        positions = torch.arange(n)[None]
        causal = torch.full((n, n), float("-inf")).triu(1)[None, None]
        x = model.embed_tokens(ids)
        rotary = model.rotary_emb(x, positions)
        for i, layer in enumerate(model.layers):
            if i in layers:
                x = x.clone()
                x[0, slot] = x[0, -1]
            x = layer(x, attention_mask=causal, position_embeddings=rotary, position_ids=positions)
            x = x[0] if isinstance(x, tuple) else x
        out.append(F.normalize(model.norm(x)[0, -1], dim=-1))
    return torch.stack(out).numpy()


def _templated(texts):
    head, tail = PROMPTEOL_TEMPLATE.split("{text}")
    return [head + t + tail for t in texts]


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_qwen3"])
def test_bidirectional_mean_matches_per_text_reference(request, fixture, varied_texts):
    path = request.getfixturevalue(fixture)
    encoder = load_encoder(str(path), pooling="mean", bidirectional=True)
    ours = encoder.encode(varied_texts, batch_size=8)
    ref = reference_bidirectional_mean(path, varied_texts)
    assert np.abs(ours - ref).max() <= TOL, f"{fixture}: bidirectional mean differs by {np.abs(ours - ref).max():.2e}"
    causal = load_encoder(str(path), pooling="mean").encode(varied_texts[:3])
    assert np.abs(causal - ours[:3]).max() > 1e-3, "bidirectional=True did not change the attention"


def test_bidirectional_holds_without_padding(tiny_qwen2, varied_texts):
    """Equal-length batch: transformers drops the mask, and sdpa must still run non-causal."""
    encoder = load_encoder(str(tiny_qwen2), bidirectional=True)
    text = varied_texts[0]
    batch = encoder.encode([text, text, text])
    ref = reference_bidirectional_mean(tiny_qwen2, [text])
    assert np.abs(batch - ref).max() <= TOL
    attention = [m for m in encoder.model.modules() if type(m).__name__.endswith("Attention")]
    assert attention and not any(m.is_causal for m in attention), "sdpa falls back to module.is_causal when unmasked"


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_qwen3"])
def test_causal_last_token_matches_per_text_reference(request, fixture, varied_texts):
    path = request.getfixturevalue(fixture)
    ours = load_encoder(str(path), pooling="last").encode(varied_texts, batch_size=8)
    ref = reference_causal_last(path, varied_texts)
    assert np.abs(ours - ref).max() <= TOL, f"{fixture}: causal last-token differs by {np.abs(ours - ref).max():.2e}"


def test_token_prepending_matches_layer_by_layer_reference(tiny_qwen3, varied_texts):
    texts = varied_texts[:6] + varied_texts[-3:]
    encoder = load_encoder(str(tiny_qwen3), pooling="last", prompt_template=PROMPTEOL_TEMPLATE, token_prepending=True)
    ours = encoder.encode(texts, batch_size=4)
    ref = reference_token_prepending_last(tiny_qwen3, _templated(texts))
    assert np.abs(ours - ref).max() <= TOL, f"Token Prepending differs by {np.abs(ours - ref).max():.2e}"
    plain = load_encoder(str(tiny_qwen3), pooling="last", prompt_template=PROMPTEOL_TEMPLATE).encode(texts)
    assert np.abs(plain - ours).max() > 1e-3, "Token Prepending changed nothing"


def test_token_prepending_layers_option(tiny_qwen3, varied_texts):
    """Fu et al.'s code passes an exclusive end (1, 8); the option is inclusive: '2-4' is layers 2, 3, 4."""
    texts = varied_texts[:4]
    encoder = load_encoder(
        str(tiny_qwen3),
        pooling="last",
        prompt_template=PROMPTEOL_TEMPLATE,
        token_prepending=True,
        token_prepending_layers="2-4",
    )
    assert encoder.options.token_prepending_layers == (2, 3, 4)
    ref = reference_token_prepending_last(tiny_qwen3, _templated(texts), layers=(2, 3, 4))
    assert np.abs(encoder.encode(texts) - ref).max() <= TOL
    with pytest.raises(Exception, match=r"layers \[9\] do not exist"):
        load_encoder(
            str(tiny_qwen3), prompt_template=PROMPTEOL_TEMPLATE, token_prepending=True, token_prepending_layers=[1, 9]
        )


def test_token_prepending_with_instruction_inside_template(tiny_qwen3):
    encoder = load_encoder(str(tiny_qwen3), pooling="last", prompt_template=PROMPTEOL_TEMPLATE, token_prepending=True)
    ours = encoder.encode(["what is photosynthesis?"], instruction="Retrieve semantically similar text")
    ref = reference_token_prepending_last(
        tiny_qwen3, _templated(["Instruct: Retrieve semantically similar text\nQuery: what is photosynthesis?"])
    )
    assert np.abs(ours - ref).max() <= TOL


@pytest.mark.parametrize("fixture", ["tiny_qwen2", "tiny_qwen3"])
def test_padding_invariance_on_decoders(request, fixture, varied_texts):
    path = request.getfixturevalue(fixture)
    for kwargs in ({"bidirectional": True}, {"pooling": "last"}):
        encoder = load_encoder(str(path), **kwargs)
        alone = np.stack([encoder.encode([t])[0] for t in varied_texts[:3]])
        mixed = encoder.encode(varied_texts, batch_size=len(varied_texts))
        assert np.abs(alone - mixed[:3]).max() <= TOL, f"{fixture} {kwargs}: padding changed an embedding"


@pytest.fixture(scope="module")
def st_mrl_folder(tmp_path_factory, tiny_qwen3):
    """A sentence-transformers folder: tiny Qwen3 + last-token Pooling + a Dense MRL projection."""
    import json

    from sentence_transformers import SentenceTransformer, models

    torch.manual_seed(3)
    transformer = models.Transformer(str(tiny_qwen3))
    pooling = models.Pooling(128, pooling_mode="lasttoken")
    dense = models.Dense(128, 96, bias=True, activation_function=torch.nn.Identity())
    out = tmp_path_factory.mktemp("st_mrl")
    SentenceTransformer(modules=[transformer, pooling, dense], device="cpu").save(str(out))
    config = json.loads((out / "config_sentence_transformers.json").read_text())
    config["matryoshka_dims"] = [32, 64, 96]
    (out / "config_sentence_transformers.json").write_text(json.dumps(config))
    return out


def test_sentence_transformers_folder_with_dense_mrl(st_mrl_folder, varied_texts):
    from sentence_transformers import SentenceTransformer

    texts = varied_texts[:8]
    encoder = load_encoder(str(st_mrl_folder), dim=64, normalize=True)
    assert encoder.options.pooling.value == "last", "the folder's Pooling config must be honoured"
    plain = load_encoder(str(st_mrl_folder))
    assert not plain.options.normalize, "no Normalize module: the checkpoint declares unnormalised output"
    assert plain.resolution.source("normalize").startswith("checkpoint: modules.json")
    ours = encoder.encode(texts)
    raw = SentenceTransformer(str(st_mrl_folder), device="cpu").encode(texts, normalize_embeddings=False)
    expected = raw[:, :64] / np.linalg.norm(raw[:, :64], axis=1, keepdims=True)
    assert ours.shape == (8, 64)
    assert np.abs(ours - expected).max() <= TOL
    with pytest.raises(Exception, match=r"valid dims are \[32, 64, 96\]"):
        load_encoder(str(st_mrl_folder), dim=48)


def test_nan_embedding_is_an_error(tiny_qwen2, tmp_path):
    model = AutoModel.from_pretrained(tiny_qwen2)
    with torch.no_grad():
        model.norm.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_qwen2).save_pretrained(tmp_path)
    with pytest.raises(EmbeddingError, match=r"NaN/inf embeddings for input\(s\) \[0, 1\]"):
        load_encoder(str(tmp_path)).encode(["a", "b"])
