"""``HFInferTextSplitter``: Elasticsearch-compatible chunking as a LangChain text splitter."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import TextSplitter

from hf_infer_core import Chunk, ChunkingSettings, InferenceEndpoint, chunk_text, resolve_chunking_settings
from hf_infer_core.text._fit import token_fitter

__all__ = ["HFInferTextSplitter"]


class HFInferTextSplitter(TextSplitter):
    """Split text exactly as Elasticsearch's inference chunkers do (ICU words and sentences).

    Documents produced carry ``start_index`` and ``end_index`` metadata: the chunk's exact
    ``[start, end)`` offsets in the source text (not found by searching, so repeated text and
    overlapping chunks get the right offsets). ``add_offsets=False`` leaves both out, so an
    edit early in a document does not change the metadata, and so the hash that LangChain's
    ``index()`` keys on, of every chunk after it.

    Example:
        >>> splitter = HFInferTextSplitter({"strategy": "word", "max_chunk_size": 50, "overlap": 10})
        >>> docs = splitter.create_documents(["some long text ..."])
    """

    def __init__(
        self,
        chunking_settings: ChunkingSettings | InferenceEndpoint | Mapping[str, Any] | str | None = None,
        *,
        keep_trailing_text: bool = False,
        add_offsets: bool = True,
        tokenizer: Any = None,
        max_input_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        """Create a splitter from chunking settings (model, endpoint, Elasticsearch dict or JSON).

        ``keep_trailing_text``: see :func:`hf_infer_core.chunk_text` (off: Elasticsearch's offsets).
        ``add_offsets``: ``start_index`` and ``end_index`` metadata (``False``: neither, whatever
        ``add_start_index`` says; for incremental indexing).
        ``tokenizer`` (a ``tokenizers.Tokenizer`` or ``tokenizer.json`` path) with
        ``max_input_tokens`` (or an endpoint's): chunks over the limit are split again at word
        boundaries into the fewest pieces that fit, as the clients do.
        """
        settings = resolve_chunking_settings(chunking_settings)
        self._keep_trailing_text = keep_trailing_text
        self._add_offsets = add_offsets
        self._fit = token_fitter(chunking_settings, tokenizer, max_input_tokens)
        # TextSplitter's size/overlap are in its own length unit; ours are words and are only
        # reported here so LangChain's checks and reprs stay meaningful.
        size = settings.max_chunk_size or 1_000_000
        overlap = settings.overlap or 0
        kwargs.setdefault("add_start_index", add_offsets)
        kwargs.setdefault("strip_whitespace", False)
        super().__init__(chunk_size=size, chunk_overlap=overlap, **kwargs)
        self._settings = settings

    @property
    def chunking_settings(self) -> ChunkingSettings:
        """The chunking settings this splitter applies."""
        return self._settings

    def split_text(self, text: str) -> list[str]:
        """Return the chunk texts of ``text``."""
        return [chunk.text for chunk in self.chunks(text)]

    def chunks(self, text: str) -> list[Chunk]:
        """Return the chunks of ``text`` with their offsets and word counts."""
        return self._fit(text, chunk_text(text, self._settings, keep_trailing_text=self._keep_trailing_text))

    def create_documents(self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None) -> list[Document]:
        """Create one document per chunk, with ``start_index``/``end_index`` metadata."""
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(metadatas)} metadatas")
        documents: list[Document] = []
        for i, text in enumerate(texts):
            base = metadatas[i] if metadatas is not None else {}
            for chunk in self.chunks(text):
                metadata = {**base, "end_index": chunk.end} if self._add_offsets else dict(base)
                if self._add_offsets and self._add_start_index:
                    metadata["start_index"] = chunk.start
                documents.append(Document(page_content=chunk.text, metadata=metadata))
        return documents

    def split_documents(self, documents: Iterable[Document]) -> list[Document]:
        """Split documents, keeping each one's metadata on its chunks."""
        docs: Sequence[Document] = list(documents)
        return self.create_documents([d.page_content for d in docs], [dict(d.metadata) for d in docs])
