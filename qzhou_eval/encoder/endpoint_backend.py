"""An OpenAI-compatible server as the encoder's engine: same formatting, dedupe, cache and head as local weights.

The harness formats every text exactly as for local weights (instruction prefix, template, 'Null')
and sends the strings: what is certified is what the server does with them (its tokenizer, pooling,
attention, dtype, quantisation). Requests are cut by a token budget (counted with the local tokenizer
when a checkpoint folder is given, else estimated from UTF-8 bytes), sent concurrently over the base
URLs, and every finished request is cached at once, so a killed run resumes without asking again.
The server's vectors then go through the protocol's MRL slice and normalisation (:func:`finish`).

With local weights beside the endpoint, :class:`ServedModelCheck` encodes a few of the first task's
texts both ways (local fp32 on CPU) and stops the run below a cosine floor, before hours are spent.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from qzhou_eval.encoder.pass_base import BackendDefaults, BuiltBackend, CallContext, finish
from qzhou_eval.errors import EndpointMismatch
from qzhou_eval.modeling.loading import LoadedModel, declared_shape, load_tokenizer
from qzhou_eval.modeling.mrl import check_dim
from qzhou_eval.options import Batching
from qzhou_eval.remote.endpoint import EndpointClient
from qzhou_eval.resolution.backends import Capabilities
from qzhou_eval.resolution.spec import RunSpec

logger = logging.getLogger(__name__)

# Without a local tokenizer: a token per 3 UTF-8 bytes (English words run ~4-5 bytes a token, CJK 3),
# so a request holds at most about its budget; only batching depends on it, never an embedding.
_BYTES_PER_TOKEN = 3


class LocalEncoder(Protocol):
    """The local checkpoint a served model is checked against: formatted inputs to protocol vectors."""

    def embed_formatted(self, inputs: list[str]) -> np.ndarray: ...


def estimated_tokens(text: str, max_length: int) -> int:
    return min(max_length, 2 + len(text.encode("utf-8")) // _BYTES_PER_TOKEN)


def plan_requests(lengths: list[int], batching: Batching) -> list[list[int]]:
    """Row lists, longest texts first, each within ``max_rows`` texts and ``max_tokens`` tokens (unpadded:
    servers pack sequences). A budget of 0 means fixed requests of ``max_rows`` texts."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    requests: list[list[int]] = []
    current: list[int] = []
    used = 0
    for row in order:
        full = len(current) >= batching.max_rows or (
            batching.max_tokens and current and used + lengths[row] > batching.max_tokens
        )
        if full:
            requests.append(current)
            current, used = [], 0
        current.append(row)
        used += lengths[row]
    if current:
        requests.append(current)
    return requests


def build(spec: RunSpec, build_local: Callable[[RunSpec], LocalEncoder]) -> BuiltBackend:
    """The server that ``spec`` names; ``spec.info`` is the local checkpoint, if any, whose width and tokenizer
    are used and which (``build_local``, unless the settings' ``verify_texts`` is 0) checks the first texts.

    The server is probed once, so a wrong model or width fails now.

    Raises:
        EndpointError: the server cannot be reached, serves another model, or answers with the wrong width.
        InvalidOptionError: a bad dim.
    """
    info, settings = spec.info, spec.endpoint
    tokenizer, width, hidden = None, None, 0
    if info is not None:
        shape = declared_shape(info, spec.trust_remote_code)
        width, hidden = shape.width, shape.hidden_size
        tokenizer = load_tokenizer(info.source, info.layout, spec.trust_remote_code)
    client = EndpointClient(settings, expected_width=width, served=spec.served)
    client.truncate_to = spec.max_length if client.served.is_vllm else None
    client.embed(["Null"])  # a probe: the model answers under its name, at the expected width
    check_dim(spec.dim, client.width, spec["mrl_dims"])
    check = None
    if texts := verify_texts(spec):
        local = spec.for_local_check()
        check = ServedModelCheck(lambda: build_local(local), texts, settings.verify_floor)
    logger.info(
        "encoding through %s at %s (%d request(s) in flight at most)",
        client.served.name,
        ", ".join(settings.base_urls),
        client.workers,
    )
    loaded = LoadedModel(model=None, tokenizer=tokenizer, width=client.width, hidden_size=hidden)
    return BuiltBackend(loaded, EndpointBackend(spec.backend, client, spec.dim, spec.normalize, check), "endpoint")


def verify_texts(spec: RunSpec) -> int:
    """How many texts the served model is checked on against the local weights (0 without local weights)."""
    verify = spec.endpoint.verify_texts
    return (spec.endpoint.VERIFY_DEFAULT if spec.weights_here else 0) if verify is None else verify


class EndpointBackend(BackendDefaults):
    """An OpenAI-compatible server: concurrent requests, each cached as it finishes; the first texts checked
    against the local weights when a checkpoint folder is given (``check``)."""

    def __init__(
        self,
        capabilities: Capabilities,
        client: EndpointClient,
        dim: int | None,
        normalize: bool,
        check: ServedModelCheck | None = None,
    ) -> None:
        self.capabilities = capabilities
        self.client = client
        self.dim = dim
        self.normalize = normalize
        self.check = check

    def token_lengths(self, texts: list[str], call: CallContext) -> list[int]:
        if call.tokenizer is not None:
            return call.token_lengths(texts)
        return [estimated_tokens(t, call.max_length) for t in texts]

    def check_first(self, inputs: list[str]) -> None:
        if self.check is not None and not self.check.done:
            self.check(self, inputs)

    def describe(self) -> dict[str, Any] | None:
        """Requests, retries and what the server reported, and the start-up check's outcome."""
        return {**self.client.describe(), "check": self.check.as_record() if self.check else None}

    def to_protocol(self, vectors: np.ndarray) -> np.ndarray:
        """The server's float32 vectors, sliced to the MRL dimension and normalised as the protocol does."""
        return finish(torch.from_numpy(vectors), True, self.dim, self.normalize).numpy()

    def embed(self, texts: list[str], call: CallContext, batching: Batching) -> np.ndarray:
        client = self.client
        out = np.empty((len(texts), call.width), dtype=np.float32)
        if not texts:
            return out
        requests = plan_requests(self.token_lengths(texts, call), batching)
        bar = tqdm(total=len(texts), desc=call.progress, unit="text", disable=call.progress is None)
        pool = ThreadPoolExecutor(max_workers=client.workers, thread_name_prefix="qzhou-eval-endpoint")
        running = {pool.submit(client.embed, [texts[r] for r in rows]): rows for rows in requests}
        failure: BaseException | None = None

        def keep(future) -> None:
            rows = running.pop(future)
            vectors = self.to_protocol(future.result())
            out[rows] = vectors
            call.keep([texts[r] for r in rows], vectors)
            bar.update(len(rows))

        interrupted = False
        try:
            while running and failure is None:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is not None:
                        failure = failure or future.exception()
                        running.pop(future)
                    else:
                        keep(future)
        except BaseException:  # Ctrl-C, SIGTERM: stop now, not after the requests in flight time out
            interrupted = True
            raise
        finally:
            pool.shutdown(wait=not interrupted, cancel_futures=True)
            for future in [f for f in running if f.done() and not f.cancelled() and f.exception() is None]:
                keep(future)  # answers that arrived while stopping are kept for the rerun too
            bar.close()
        if failure is not None:
            raise failure
        return out


@dataclass(frozen=True)
class CheckedPair:
    text: str
    cosine: float


class ServedModelCheck:
    """Encode the first ``count`` texts the run meets (half from each of its first calls, so both sides of
    a retrieval task are seen) through the server and through the local checkpoint; below ``floor``, stop.

    ``reference`` builds the local fp32 CPU encoder only when the check runs, and it is dropped after; it
    answers ``embed_formatted(texts)`` (:meth:`qzhou_eval.encoder.embedder.Encoder.embed_formatted`).
    """

    def __init__(self, reference, count: int, floor: float) -> None:
        self._reference = reference
        self.count = count
        self.floor = floor
        self.checked: list[CheckedPair] = []

    @property
    def done(self) -> bool:
        return len(self.checked) >= self.count

    def __call__(self, served: EndpointBackend, inputs: list[str]) -> None:
        """Check a sample of ``inputs`` (formatted, distinct) of one encode call.

        Raises:
            EndpointMismatch: a cosine below the floor, naming the worst texts and the usual causes.
        """
        quota = min(self.count - len(self.checked), math.ceil(self.count / 2))
        if quota <= 0 or not inputs:
            return
        picks = sorted({int(i) for i in np.linspace(0, len(inputs) - 1, num=min(quota, len(inputs)))})
        sample = [inputs[i] for i in picks]
        expected = self._local_encoder().embed_formatted(sample)
        answered = served.to_protocol(served.client.embed(sample))
        cosines = (expected * answered).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(answered, axis=1))
        self.checked.extend(CheckedPair(t, float(c)) for t, c in zip(sample, cosines))
        worst = sorted(self.checked, key=lambda p: p.cosine)
        if worst[0].cosine < self.floor:
            lines = "\n".join(f"  cosine {p.cosine:.6f}  {p.text[:100]!r}" for p in worst[:5])
            raise EndpointMismatch(
                f"the served model is not the local checkpoint: cosine below the floor {self.floor} on "
                f"{sum(p.cosine < self.floor for p in self.checked)} of {len(self.checked)} checked text(s); worst:\n"
                f"{lines}\nusual causes: another pooling (vLLM --pooler-config / TEI --pooling), causal instead of "
                "bidirectional attention, a prompt or instruction the server adds or drops, a lossy quantisation. "
                "Fix the server, or lower --verify_floor if the difference is intended"
            )
        if self.done:
            logger.info(
                "endpoint check: %d text(s), cosine to the local fp32 checkpoint >= %.6f (floor %s)",
                len(self.checked),
                worst[0].cosine,
                self.floor,
            )
            self._reference = None  # the local model is no longer needed

    def _local_encoder(self) -> LocalEncoder:
        if callable(self._reference):
            logger.info("loading the local checkpoint (float32, CPU) to check the endpoint against it")
            self._reference = self._reference()
        return self._reference

    def as_record(self) -> dict:
        return {
            "texts": len(self.checked),
            "floor": self.floor,
            "min_cosine": min((p.cosine for p in self.checked), default=None),
        }
