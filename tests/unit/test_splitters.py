from __future__ import annotations

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_text_splitters import TextSplitter
from llama_index.core import Document
from llama_index.core.node_parser import NodeParser

from hf_infer_core import InferenceEndpoint, chunk_text
from langchain_hf_infer import HFInferTextSplitter
from llama_index_hf_infer import HFInferNodeParser

SETTINGS = {"strategy": "word", "max_chunk_size": 10, "overlap": 5}
# Repeated text: offsets found by searching would point at the first copy.
TEXT = "same words again and again. " * 12


def test_langchain_splitter_matches_core_and_carries_offsets() -> None:
    splitter = HFInferTextSplitter(SETTINGS)
    assert isinstance(splitter, TextSplitter)
    chunks = chunk_text(TEXT, SETTINGS)
    assert splitter.split_text(TEXT) == [c.text for c in chunks]
    docs = splitter.create_documents([TEXT], [{"source": "a"}])
    assert [(d.metadata["start_index"], d.metadata["end_index"]) for d in docs] == [(c.start, c.end) for c in chunks]
    assert all(d.metadata["source"] == "a" for d in docs)
    for doc in docs:
        assert TEXT[doc.metadata["start_index"] : doc.metadata["end_index"]] == doc.page_content


def test_langchain_split_documents_keeps_metadata() -> None:
    splitter = HFInferTextSplitter('{"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0}')
    docs = splitter.split_documents([LCDocument(page_content=TEXT, metadata={"id": 1}), LCDocument(page_content="x")])
    assert docs[-1].page_content == "x"
    assert docs[-1].metadata == {"start_index": 0, "end_index": 1}
    assert all(d.metadata["id"] == 1 for d in docs[:-1])


def test_llama_index_parser_offsets_are_exact() -> None:
    endpoint = InferenceEndpoint.from_request(
        "text_embedding",
        "x",
        {
            "service": "hugging_face",
            "service_settings": {"url": "http://h", "api_key": "k"},
            "chunking_settings": SETTINGS,
        },
    )
    parser = HFInferNodeParser(endpoint)
    assert isinstance(parser, NodeParser)
    nodes = parser.get_nodes_from_documents([Document(text=TEXT, metadata={"source": "b"})])
    chunks = chunk_text(TEXT, SETTINGS)
    assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(c.start, c.end) for c in chunks]
    assert [n.get_content() for n in nodes] == [c.text for c in chunks]
    assert all(n.metadata["source"] == "b" for n in nodes)
    assert parser.split_text(TEXT) == [c.text for c in chunks]
    assert HFInferNodeParser.class_name() == "HFInferNodeParser"
    assert parser.chunking == SETTINGS


def test_splitters_end_where_elasticsearch_ends_unless_asked() -> None:
    from llama_index.core.schema import Document as LIDocument

    from langchain_hf_infer import HFInferTextSplitter
    from llama_index_hf_infer import HFInferNodeParser

    text = " ".join(f"w{i}" for i in range(20)) + ". "
    settings = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}
    assert HFInferTextSplitter(settings).create_documents([text])[-1].metadata["end_index"] == len(text) - 2
    assert HFInferTextSplitter(settings, keep_trailing_text=True).split_text(text)[-1].endswith(". ")
    nodes = HFInferNodeParser(settings).get_nodes_from_documents([LIDocument(text=text)])
    assert nodes[-1].end_char_idx == len(text) - 2
    covering = HFInferNodeParser(settings, keep_trailing_text=True).get_nodes_from_documents([LIDocument(text=text)])
    assert covering[-1].end_char_idx == len(text)


class _Counting(DeterministicFakeEmbedding):
    """A fake embedding that counts the texts it is asked for (what re-indexing sends)."""

    sent: int = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.sent += len(texts)
        return super().embed_documents(texts)


@pytest.mark.filterwarnings("ignore:Using SHA-1:UserWarning")  # LangChain's own default key, not ours
def test_without_offsets_langchain_index_re_embeds_only_the_edited_chunk() -> None:
    """Issue #29: with offsets in the metadata, every chunk after an edit hashes anew."""
    sentences = [f"Sentence {n} of the document tells of topic {n % 7}." for n in range(12)]
    original = [LCDocument(page_content=" ".join(sentences), metadata={"source": f"doc{d}"}) for d in range(3)]
    edited = list(original)
    edited[1] = LCDocument(
        page_content=original[1].page_content.replace("Sentence 2 of", "Sentence 2, edited, of"),
        metadata={"source": "doc1"},
    )
    settings = {"strategy": "sentence", "max_chunk_size": 20, "sentence_overlap": 0}
    sent = {}
    for offsets in (True, False):
        splitter = HFInferTextSplitter(settings, add_offsets=offsets)
        embedding = _Counting(size=8)
        store, records = InMemoryVectorStore(embedding), InMemoryRecordManager(namespace=f"test-{offsets}")
        records.create_schema()
        first = index(splitter.split_documents(original), records, store, cleanup="incremental", source_id_key="source")
        before = embedding.sent
        again = index(splitter.split_documents(edited), records, store, cleanup="incremental", source_id_key="source")
        sent[offsets] = embedding.sent - before
        assert first["num_added"] == before and again["num_deleted"] == again["num_added"]
        docs = splitter.split_documents(edited)
        assert offsets == all("start_index" in d.metadata and "end_index" in d.metadata for d in docs)
        assert offsets or not any({"start_index", "end_index"} & d.metadata.keys() for d in docs)
    assert sent[False] == 1  # the chunk holding the edit
    assert sent[True] > 1  # it and every chunk after it in that document
