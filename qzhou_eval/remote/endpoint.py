"""An OpenAI-compatible ``/v1/embeddings`` server (vLLM, text-embeddings-inference) as the encoder's engine.

One :class:`EndpointClient` holds one ``openai`` client per base URL (one per replica) and sends each
request to the next URL in turn. Everything a server answers is checked before it becomes an
embedding: as many vectors as texts, in order, of the width the first answer (or the local
checkpoint) set, finite, and from the model that was asked for. Transient failures are retried with
backoff and counted by reason (:mod:`qzhou_eval.remote.retry`); anything else stops the run with the
server's own words and the fix.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qzhou_eval.errors import EmbeddingError, EndpointError, InvalidOptionError
from qzhou_eval.remote.retry import import_openai, retry_wait, transient_reason

logger = logging.getLogger(__name__)

INSTALL_EXTRA = "endpoint"
# What a record says about weights it never saw.
WEIGHTS_NOT_HASHED = "not hashed: the weights are behind an endpoint"
# How vLLM's server says it is vLLM (GET /v1/models owned_by); it then gets truncate_prompt_tokens.
_VLLM_OWNER = "vllm"


@dataclass(frozen=True)
class EndpointSettings:
    """How to reach the server(s) and how hard to try. The one owner of the endpoint defaults."""

    base_urls: tuple[str, ...]
    api_key_env: str | None = None  # the environment variable holding the API key (never the key itself)
    served_model: str | None = None  # None: the one model the server lists
    concurrency: int = 4  # requests in flight per base URL
    timeout_s: float = 300.0
    max_retries: int = 6
    backoff_s: float = 1.0
    verify_texts: int | None = None  # None: VERIFY_DEFAULT when local weights are given, else 0
    verify_floor: float = 0.999

    VERIFY_DEFAULT = 8

    def __post_init__(self) -> None:
        urls = tuple(u.strip().rstrip("/") for u in self.base_urls if u and u.strip())
        if not urls:
            raise InvalidOptionError("--backend openai needs --base_url URL (e.g. http://127.0.0.1:8000/v1)")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise InvalidOptionError(f"--base_url {url!r} must start with http:// or https://")
        object.__setattr__(self, "base_urls", urls)
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0 or self.backoff_s < 0:
            raise InvalidOptionError(
                "endpoint settings: concurrency >= 1, max_retries >= 0, timeout_s > 0 and backoff_s >= 0 are required"
            )
        if self.verify_texts is not None and self.verify_texts < 0:
            raise InvalidOptionError(f"--verify_endpoint must be 0 or more texts, got {self.verify_texts}")
        if not 0 < self.verify_floor <= 1:
            raise InvalidOptionError(f"--verify_floor must be in (0, 1], got {self.verify_floor}")

    def api_key(self) -> str:
        """The key from ``api_key_env``; servers without auth (vLLM's default) take any string."""
        if self.api_key_env is None:
            return "EMPTY"
        key = os.environ.get(self.api_key_env)
        if not key:
            raise InvalidOptionError(
                f"--api_key_env {self.api_key_env}: that environment variable is not set; export it, or leave the "
                "flag out for a server without authentication"
            )
        return key


@dataclass(frozen=True)
class ServedModel:
    """What the server(s) report about the model they serve (GET /v1/models), per base URL."""

    name: str
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)  # base URL -> id, root, owned_by, max_model_len
    # What asking took (HTTP requests, retries by reason): a run's client counts on from there.
    asked: tuple[int, tuple[tuple[str, int], ...]] = (0, ())

    @property
    def is_vllm(self) -> bool:
        return all(r.get("owned_by") == _VLLM_OWNER for r in self.reports.values())

    @property
    def max_model_len(self) -> int | None:
        lengths = {r.get("max_model_len") for r in self.reports.values()} - {None}
        return min(lengths) if lengths else None

    def identity(self) -> dict[str, Any]:
        """What a cached embedding from this server depends on: the model's name and what backs it."""
        roots = sorted({str(r.get("root")) for r in self.reports.values() if r.get("root")})
        return {"served_model": self.name, "roots": roots, "weights": WEIGHTS_NOT_HASHED}


class EndpointClient:
    """Sends embedding requests round-robin over the base URLs, checked and retried."""

    def __init__(
        self, settings: EndpointSettings, expected_width: int | None = None, served: ServedModel | None = None
    ) -> None:
        openai = import_openai("--backend openai", INSTALL_EXTRA)
        self._openai = openai
        self.settings = settings
        key = settings.api_key()
        self._clients = [
            openai.OpenAI(base_url=url, api_key=key, timeout=settings.timeout_s, max_retries=0)
            for url in settings.base_urls
        ]
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.width = expected_width  # set by the first answer when no local checkpoint says it
        self.requests = served.asked[0] if served else 0  # HTTP requests sent, retries and GET /models included
        self.retries: Counter[str] = Counter(dict(served.asked[1])) if served else Counter()
        self.served = served or self._discover()  # a run asks once, at resolution (resolution/resolve.py)
        self.truncate_to: int | None = None  # sent as vLLM's truncate_prompt_tokens (set by the encoder)

    @property
    def workers(self) -> int:
        return self.settings.concurrency * len(self._clients)

    @classmethod
    def discover(cls, settings: EndpointSettings) -> ServedModel:
        """What the server(s) serve, asked once (GET /models on every base URL)."""
        return cls(settings).served

    def _discover(self) -> ServedModel:
        """Ask every base URL what it serves; all must serve the requested (or the only) model.

        Raises:
            EndpointError: a URL that cannot be reached, lists no such model, or lists several and none was named.
        """
        reports: dict[str, dict[str, Any]] = {}
        wanted = self.settings.served_model
        for url, client in zip(self.settings.base_urls, self._clients):
            try:
                listed = list(self._with_retries(url, lambda c=client: c.models.list()))
            except EndpointError as exc:
                raise EndpointError(f"{url}: GET /models failed ({exc}); is the server up at that URL?") from None
            ids = [m.id for m in listed]
            if wanted is None:
                if len(ids) != 1:
                    raise EndpointError(
                        f"{url} serves {ids or 'no models'}; name the one to evaluate with --served_model NAME"
                    )
                wanted = ids[0]
            if wanted not in ids:
                raise EndpointError(f"{url} does not serve {wanted!r} (it lists {ids}); check --served_model")
            model = next(m for m in listed if m.id == wanted)
            extra = model.model_extra or {}
            reports[url] = {
                "id": model.id,
                "owned_by": getattr(model, "owned_by", None),
                "root": extra.get("root"),
                "max_model_len": extra.get("max_model_len"),
            }
        roots = {r["root"] for r in reports.values()}
        if len(roots) > 1:
            logger.warning("the base URLs report different model roots %s for %s", sorted(map(str, roots)), wanted)
        return ServedModel(wanted, reports, (self.requests, tuple(sorted(self.retries.items()))))

    def _with_retries(self, url: str, call):
        """``call()``, retried on transient failures; a permanent refusal is an error with the server's words."""
        for attempt in range(self.settings.max_retries + 1):
            with self._lock:
                self.requests += 1
            try:
                return call()
            except self._openai.APIError as exc:
                reason = transient_reason(self._openai, exc)
                if reason is None:
                    raise EndpointError(f"{url} refused the request: {_server_words(exc)}") from None
                with self._lock:
                    self.retries[reason] += 1
                if attempt == self.settings.max_retries:
                    raise EndpointError(
                        f"{url}: {reason} after {self.settings.max_retries} retries ({_server_words(exc)}); the "
                        "embeddings finished so far are cached, so rerunning the same command resumes"
                    ) from None
                delay = retry_wait(exc, attempt, self.settings.backoff_s)
                logger.info("%s: %s; retry %d in %.1fs", url, reason, attempt + 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def embed(self, texts: list[str]) -> np.ndarray:
        """One request: float32 rows of the server's vectors, one per text, checked.

        Raises:
            EndpointError: a refusal, repeated transient failures, or an answer of the wrong shape or model.
            EmbeddingError: NaN or inf in an answer.
        """
        turn = next(self._turn) % len(self._clients)
        url, client = self.settings.base_urls[turn], self._clients[turn]
        extra = {"truncate_prompt_tokens": self.truncate_to} if self.truncate_to else None
        answer = self._with_retries(
            url,
            lambda: client.embeddings.create(
                model=self.served.name, input=texts, encoding_format="float", extra_body=extra
            ),
        )
        if answer.model != self.served.name:
            raise EndpointError(
                f"{url} answered as model {answer.model!r}, not {self.served.name!r}: the URL serves another model "
                "(check --base_url and --served_model)"
            )
        rows = sorted(answer.data, key=lambda d: d.index)
        if [d.index for d in rows] != list(range(len(texts))):
            raise EndpointError(f"{url} returned {len(rows)} embedding(s) for {len(texts)} input(s)")
        vectors = np.asarray([d.embedding for d in rows], dtype=np.float32)
        width = vectors.shape[1] if vectors.ndim == 2 else None
        with self._lock:
            if self.width is None and width:
                self.width = width
        if width != self.width:
            raise EndpointError(
                f"{url} returned {width}-dimensional embeddings where {self.width} were expected; a server with another "
                "model, another Dense head or a 'dimensions' setting answers this way"
            )
        bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
        if bad.size:
            raise EmbeddingError(
                f"{url} returned NaN/inf embeddings for {bad.size} of {len(texts)} text(s), e.g. "
                f"{texts[int(bad[0])][:80]!r}; check the server's dtype (float16 overflows on some models)"
            )
        return vectors

    def describe(self) -> dict[str, Any]:
        """The endpoint part of a run's manifest: where, what it reported, how many requests and retries."""
        return {
            "base_urls": list(self.settings.base_urls),
            "served_model": self.served.name,
            "reported": self.served.reports,
            "weights": WEIGHTS_NOT_HASHED,
            "requests": self.requests,
            "retries": dict(self.retries),
        }


def _server_words(exc: Exception) -> str:
    """The status and the message a server sent, short."""
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    return (f"HTTP {status}: " if status else "") + message[:300]
