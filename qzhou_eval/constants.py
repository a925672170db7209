"""Protocol constants of the published QZhou-Embedding evaluation, each with its source.

Sources: the public reference evaluation scripts of Kingsoft-LLM/QZhou-Embedding and
QZhou-Embedding-Zh (``embedder.py``, ``run_mteb_all_v2.py``, ``run_cmteb_all.py``), their model
cards, and the technical report (arXiv 2508.21632). ``../shared/SPEC.md`` section 1 restates them.
"""

from __future__ import annotations

# run_mteb_all_v2.py / run_cmteb_all.py, get_detailed_instruct(): note the space after "Query:".
INSTRUCTION_TEMPLATE = "Instruct: {instruction}\nQuery: "

# QZhou-Embedding-Zh embedder.py: the PromptEOL template (curly quotes are part of it); the
# instruction prefix goes inside the slot: template.format(text=prefix + text).
PROMPTEOL_TEMPLATE = "This sentence: <|im_start|>\u201c{text}\u201d means in one word: \u201c"

# Token Prepending placeholder (<PST> in Fu et al., ACL 2025) and the decoder layers whose input
# gets the previous layer's last-token state at the placeholder position (0-based, 1..7 inclusive).
TOKEN_PREPENDING_PLACEHOLDER = "<|im_start|>"
TOKEN_PREPENDING_LAYERS = tuple(range(1, 8))

# embedder.py, _encode(): an empty input text is replaced by this string before tokenising.
EMPTY_TEXT_REPLACEMENT = "Null"

# run_mteb_all_v2.py / run_cmteb_all.py: General_Embedder.from_pretrained(max_length=1024).
DEFAULT_MAX_LENGTH = 1024

# embedder.py, _encode(batch_size=32): rows per forward pass in the reference (the Zh embedder hands
# sentence-transformers blocks of 128 rows, which it runs 32 at a time). Used by --batching reference
# and by fixed-row batches (--max_tokens_per_batch 0).
DEFAULT_BATCH_SIZE = 32

# The harness's own batching: batches filled longest first up to this many (padded) tokens, with at
# most DEFAULT_MAX_ROWS_PER_BATCH texts, so short texts come in large batches. Not from the reference.
# On a CPU a smaller budget keeps a batch's activations in cache (MiniLM: 343 texts/s at 4096
# against 214 at 16384, bench/encode_throughput.py); a GPU wants large matrix products.
DEFAULT_MAX_TOKENS_PER_BATCH = {"cuda": 16384, "cpu": 4096}
DEFAULT_MAX_ROWS_PER_BATCH = 1024

# QZhou-Embedding-Zh model card / run_cmteb_all.py --dim choices.
QZHOU_ZH_MRL_DIMS = (128, 256, 512, 768, 1024, 1280, 1536, 1792)

# Slot every prompt template must carry exactly once.
TEMPLATE_TEXT_SLOT = "{text}"
