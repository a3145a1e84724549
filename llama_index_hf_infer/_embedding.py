"""``HFInferEmbedding``: LlamaIndex embeddings from a Hugging Face endpoint configured like Elasticsearch."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from typing import Any, ClassVar, Self

import llama_index.core.instrumentation as instrument
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, SecretStr, field_serializer, model_validator
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent

from hf_infer_core.integration._adapter import EmbeddingAdapter

__all__ = ["HFInferEmbedding"]

# Events go through this module's dispatcher; BaseEmbedding's mixin opens the methods' spans on it.
dispatcher = instrument.get_dispatcher(__name__)  # type: ignore[attr-defined]  # as llama-index-core's own modules do


class HFInferEmbedding(BaseEmbedding, EmbeddingAdapter):
    """LlamaIndex embeddings from a Hugging Face Inference Endpoint or TEI server, configured like Elasticsearch.

    Same options as ``langchain_hf_infer.HFInferEmbeddings``; Elasticsearch's ``similarity`` is
    ``vector_similarity`` here (``BaseEmbedding.similarity`` is a method). ``get_text_embedding_batch``
    streams every text through one pipeline of ``max_concurrency`` requests of ``batch_size``
    inputs, and reports each ``embed_batch_size`` (default 2048) texts to LlamaIndex's events and
    callbacks as ``BaseEmbedding`` does (with an ``embeddings_cache`` or a LlamaIndex
    ``rate_limiter`` set, ``BaseEmbedding``'s own loop runs instead). The key is the ``api_key``
    field, which LlamaIndex keeps out of its events; dumps leave it out (``None``), so a dumped
    configuration is rebuilt with the key from ``HF_TOKEN``.
    """

    # Unknown arguments are errors, as in the LangChain adapter: a misspelt option must not pass.
    model_config = ConfigDict(extra="forbid")

    similarity_field: ClassVar[str] = "vector_similarity"

    vector_similarity: str | None = Field(
        default=None, description="Elasticsearch's service_settings.similarity (BaseEmbedding.similarity is a method)."
    )
    embed_batch_size: int = Field(default=2048, gt=0, le=2048)

    @field_serializer("api_key")
    def _no_key(self, value: SecretStr | None) -> None:
        return None

    @model_validator(mode="after")
    def _name_after_endpoint(self) -> Self:
        if self.model_name == "unknown":
            # Not an assignment: that would validate the whole model (and rebuild its session) again.
            self.__dict__["model_name"] = self.model or self.inference_id  # one per endpoint, as model
        return self

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "HFInferEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._session.call(lambda client: client.embed_query(query))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._session.acall(lambda client: client.embed_query(query))

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._session.call(lambda client: client.embed_documents([text]))[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._session.acall(lambda client: client.embed_documents([text])))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._session.call(lambda client: client.embed_documents(texts))

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await self._session.acall(lambda client: client.embed_documents(texts))

    # BaseEmbedding hands the client one embed_batch_size group at a time and waits for it: every
    # group ended with the endpoint's slots draining and began with them filling, 10-15% of the
    # throughput of a 5,000-text call. One stream across the groups keeps the requests in flight
    # while the same events and callback payloads are reported group by group.
    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        """Embed ``texts`` in order through one request pipeline (see the class notes)."""
        if self._base_loop_needed():
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)
        model_dict = self._event_model_dict()
        bar = ProgressBar(show_progress or self.show_progress, len(texts))
        stream = self._session.iterate(lambda client: client.embed_iter(bar.watching(client, texts)))
        result: list[Embedding] = []
        try:
            for group in _groups(texts, self.embed_batch_size):
                dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
                with self.callback_manager.event(
                    CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
                ) as event:
                    embeddings = _whole(list(bar.counted(itertools.islice(stream, len(group)))), group)
                    result.extend(embeddings)
                    event.on_end(payload={EventPayload.CHUNKS: group, EventPayload.EMBEDDINGS: embeddings})
                dispatcher.event(_end_event(group, embeddings))
        finally:
            if isinstance(stream, Generator):  # an error or an interrupted caller: nothing more is sent
                stream.close()
            bar.close()
        return result

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed ``texts`` in order through one asyncio request pipeline (see the class notes)."""
        if self._base_loop_needed():
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)
        model_dict = self._event_model_dict()
        # BaseEmbedding would gather every group at once, max_concurrency requests each: one
        # stream keeps the whole call within max_concurrency.
        bar = ProgressBar(show_progress or self.show_progress, len(texts))
        stream = self._session.aiterate(lambda client: client.aembed_iter(bar.watching(client, texts)))
        result: list[Embedding] = []
        try:
            for group in _groups(texts, self.embed_batch_size):
                dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
                event_id = self.callback_manager.on_event_start(
                    CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
                )
                embeddings = _whole(await _take(stream, len(group), bar), group)
                result.extend(embeddings)
                dispatcher.event(_end_event(group, embeddings))
                self.callback_manager.on_event_end(
                    CBEventType.EMBEDDING,
                    payload={EventPayload.CHUNKS: group, EventPayload.EMBEDDINGS: embeddings},
                    event_id=event_id,
                )
        finally:
            if isinstance(stream, AsyncGenerator):
                await stream.aclose()
            bar.close()
        return result

    def _base_loop_needed(self) -> bool:
        # Both are LlamaIndex features (llama-index-core >= 0.12.x) that work per group.
        return getattr(self, "embeddings_cache", None) is not None or getattr(self, "rate_limiter", None) is not None

    def _event_model_dict(self) -> dict[str, Any]:
        to_payload = getattr(self, "to_payload", None)  # newer llama-index-core; it drops the key itself
        if to_payload is not None:
            payload: dict[str, Any] = to_payload()
            return payload
        model_dict = self.to_dict()
        model_dict.pop("api_key", None)
        return model_dict


def _end_event(chunks: list[str], embeddings: list[list[float]]) -> EmbeddingEndEvent:
    # Built without validation: pydantic would copy each 384-float vector into a new list (5,000
    # vectors: 5,000 lists that set off full garbage collections, ~0.15 s of a 0.6 s call). The
    # fields are what the validation would produce: a list of str and lists of float from the client.
    return EmbeddingEndEvent.model_construct(chunks=chunks, embeddings=embeddings)


def _groups(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


async def _take(stream: AsyncIterator[list[float]], count: int, bar: ProgressBar) -> list[list[float]]:
    out: list[list[float]] = []
    async for vector in stream:
        out.append(vector)
        bar.update()
        if len(out) == count:
            break
    return out


def _whole(embeddings: list[list[float]], group: list[str]) -> list[list[float]]:
    if len(embeddings) != len(group):  # pragma: no cover - the client yields one vector per text
        raise RuntimeError(f"internal error: {len(group)} texts but {len(embeddings)} vectors")
    return embeddings


class ProgressBar:
    """The batch methods' tqdm bar: texts done as their vectors arrive, the chunks sent and the rate-limit waits beside.

    Shown with ``show_progress=True`` (the method's argument, as ``BaseEmbedding`` takes it, or the
    field) for more than one text; nothing without tqdm.
    """

    def __init__(self, show: bool, total: int) -> None:
        self._bar: Any = None
        self._client: Any = None
        self._start = (0, 0.0)
        self._shown_at = 0.0
        if show and total > 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm ships with the progress extra
                return
            self._bar = tqdm(total=total, desc="Embedding", unit="text")

    def watching(self, client: Any, texts: Sequence[str]) -> Sequence[str]:
        """Follow ``client``'s activity (chunks sent, rate-limit waits) from now; returns ``texts``."""
        self._client = client
        activity = client.activity
        self._start = (activity.inputs, activity.rate_limit_wait)
        return texts

    def counted(self, vectors: Iterator[list[float]]) -> Iterator[list[float]]:
        """``vectors``, each counted as it arrives."""
        for vector in vectors:
            self.update()
            yield vector

    def update(self) -> None:
        """One more text done."""
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.monotonic()
        if now - self._shown_at >= 0.5:
            self._shown_at = now
            self._postfix()

    def _postfix(self) -> None:
        if self._client is not None:
            activity = self._client.activity
            self._bar.set_postfix(
                chunks=activity.inputs - self._start[0],
                rate_limit_wait=f"{activity.rate_limit_wait - self._start[1]:.1f}s",
                refresh=False,
            )

    def close(self) -> None:
        """The call ended, however it ended."""
        if self._bar is not None:
            self._postfix()
            self._bar.close()
