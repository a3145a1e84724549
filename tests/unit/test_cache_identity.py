"""Whose vector a cache holds: the model (checked by its probe vector), the URL and the credential.

A stored vector is this model's, this credential's and this URL's, or it is not served; see
shared/hf_infer_core/cache/_identity.py for the rules these tests hold the clients to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.stores import InMemoryByteStore

from hf_infer_core import AsyncEmbeddingClient, AuthenticationError, EmbeddingClient
from hf_infer_core.cache._identity import PROBE_TEXT, TOLERANCE, VERIFY_EVERY, Identity, same_model

from .fakes import SECRET, Awaited, FakeClock, endpoint, limiter

WORDS = {"strategy": "word", "max_chunk_size": 10, "overlap": 0}
DRIVERS = ["sync", "async"]


class Server:
    """A TEI-like endpoint whose model can be swapped under the same URL.

    ``model`` names the weights (vectors differ per model), ``dims`` their size, ``jitter`` a
    relative change of every component (a dtype or pooling change keeps the model's shape but not
    its bits). ``info``: what ``/info`` says (``None``: no ``/info``, as behind many gateways).
    ``keys``: the credentials it accepts (``None``: any).
    """

    def __init__(self, model: str = "a", dims: int = 8, info: dict[str, Any] | None = None) -> None:
        self.model, self.dims, self.jitter = model, dims, 0.0
        self.info = info
        self.keys: set[str] | None = None
        self.sent: Counter[str] = Counter()
        self.probes = 0
        self.tokenize_fails = False

    def vector(self, text: str, model: str | None = None, dims: int | None = None, jitter: float = 0.0) -> list[float]:
        seed = hashlib.blake2b(f"{model or self.model}|{text}".encode()).digest()
        rng = random.Random(seed)
        return [rng.uniform(-1, 1) * (1 + jitter) for _ in range(dims or self.dims)]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.keys is not None and request.headers.get("authorization", "")[7:] not in self.keys:
            return httpx.Response(401, json={"error": "Unauthorized", "error_type": "Unauthorized"})
        if path.endswith("/info"):
            return httpx.Response(200, json=self.info) if self.info is not None else httpx.Response(404)
        body = json.loads(request.content)
        if path.endswith("/tokenize"):
            if self.tokenize_fails:
                return httpx.Response(500, json={"error": "tokenizer down"})
            return httpx.Response(200, json=[_tokens(t) for t in body["inputs"]])
        texts = body["inputs"]
        if any(len(t.split()) > 12 for t in texts):  # a 12-token model: TEI's refusal
            return httpx.Response(413, json={"error": "`inputs` must have less than 12 tokens. Given: 20"})
        self.probes += texts.count(PROBE_TEXT)
        self.sent.update(t for t in texts if t != PROBE_TEXT)
        model = request.url.params.get("model", self.model)
        return httpx.Response(200, json=[self.vector(t, model, jitter=self.jitter) for t in texts])


def _tokens(text: str) -> list[dict[str, Any]]:
    tokens, at = [], 0
    for word in text.split():
        start = text.index(word, at)
        at = start + len(word)
        tokens.append({"id": 1, "text": word, "special": False, "start": start, "stop": at})
    return tokens


def make(
    server: Server,
    cache: Any,
    driver: str = "sync",
    *,
    url: str = "http://tei.test/embed",
    key: str = SECRET,
    clock: FakeClock | None = None,
    chunking: dict[str, Any] = WORDS,
    **options: Any,
) -> Any:
    clock = clock or FakeClock()
    cls = EmbeddingClient if driver == "sync" else AsyncEmbeddingClient
    config = endpoint(url=url, chunking=chunking, api_key=key)
    client = cls(
        config,
        transport=httpx.MockTransport(server),
        rate_limiter=limiter(clock),
        sleep=clock.sleep if driver == "sync" else clock.asleep,
        clock=clock,
        cache=cache,
        max_retries=0,
        **options,
    )
    return client if driver == "sync" else Awaited(client)


TEXTS = [f"text number {i}" for i in range(6)]


# ---------------------------------------------------------------------- the rules, as pure functions


def test_probe_vectors_match_within_the_noise_of_one_model_and_never_across_a_dtype_change() -> None:
    reference = [0.15, -0.02, 0.07, 0.0]
    assert same_model(reference, [v + 1.3e-7 for v in reference])  # a text alone or in a batch, float32
    assert not same_model(reference, [0.15 + 1.8e-4, -0.02, 0.07, 0.0])  # float16 against float32
    assert not same_model(reference, reference[:3]) and not same_model([], [])
    assert not same_model([0.0, 0.0], [0.0, 0.0]) and not same_model(reference, [float("nan")] * 4)
    assert TOLERANCE * 0.15 < 1.8e-4


def test_an_identity_is_due_until_verified_then_again_after_a_minute_or_a_mismatch() -> None:
    clock = FakeClock()
    identity = Identity("identity-x", clock)
    assert identity.due and identity.current is None
    stored = identity.resolve(None, [0.5, 0.25])
    assert stored is not None and identity.current is not None and not identity.due  # a new anchor, to store
    first, generation = identity.current, identity.generation
    clock.now += VERIFY_EVERY - 1
    assert identity.certify([0.5, 0.25]) and identity.generation == generation
    clock.now += VERIFY_EVERY - 1
    assert not identity.due  # a matching probe inside a request verified it again
    clock.now += 1
    assert identity.due
    assert identity.resolve(stored, [0.5, 0.25]) is None and identity.current == first  # the same anchor
    assert not identity.certify([0.5, 0.3]) and identity.due and identity.generation != generation
    other = Identity("identity-x", clock)
    grown = other.resolve(stored, [0.9, 0.1])  # another model: a second anchor beside the first
    assert grown is not None and other.current != first
    assert Identity("identity-x", clock).resolve(grown, [0.5, 0.25]) is None  # rolled back: the first again


# ---------------------------------------------------------------------- 1. a redeploy with no /info


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_model_redeployed_behind_the_same_url_without_info_is_never_served_the_old_vectors(
    tmp_path: Path, driver: str
) -> None:
    path = tmp_path / "cache.sqlite"
    server = Server("a", dims=8)
    make(server, path, driver).embed(TEXTS)
    server.model, server.dims = "b", 16  # redeployed: another model, another size
    client = make(server, path, driver)
    vectors = client.embed([*TEXTS[:2], "a new text"])
    assert [len(v) for v in vectors] == [16, 16, 16]  # never [8, 16, 16]
    assert vectors[0] == server.vector(TEXTS[0]) and client.cache_stats.hits == 0
    assert make(server, path, driver).embed(TEXTS[:2]) == [server.vector(t) for t in TEXTS[:2]]


# ---------------------------------------------------------------------- 2. /info is a hint, not proof


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("change", ["weights", "dtype"])
def test_two_models_that_info_names_alike_never_share_vectors(tmp_path: Path, driver: str, change: str) -> None:
    path = tmp_path / "cache.sqlite"
    info = {"model_id": "/data", "model_sha": None, "max_client_batch_size": 32}
    server = Server("a", info=info)
    make(server, path, driver).embed(TEXTS)
    if change == "weights":
        server.model = "b"
    else:  # the same weights in float16, or another pooling: every component moves a little
        server.jitter = 2e-3
    client = make(server, path, driver)
    assert client.embed(TEXTS) == [server.vector(t, jitter=server.jitter) for t in TEXTS]
    assert client.cache_stats.hits == 0


# ---------------------------------------------------------------------- 3. the query string is part of the URL


@pytest.mark.parametrize("driver", DRIVERS)
def test_urls_that_differ_only_in_their_query_never_share_vectors(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "cache.sqlite"
    server = Server()
    make(server, path, driver, url="http://tei.test/embed?model=small").embed(TEXTS)
    large = make(server, path, driver, url="http://tei.test/embed?model=large")
    assert large.embed(TEXTS) == [server.vector(t, "large") for t in TEXTS]
    assert large.cache_stats.hits == 0
    small = make(server, path, driver, url="http://tei.test/embed?model=small")
    assert small.embed(TEXTS) == [server.vector(t, "small") for t in TEXTS] and small.cache_stats.hits == 6


# ---------------------------------------------------------------------- 4. integrity


def _flip_bits(path: Path, rng: random.Random, count: int) -> None:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT key, value FROM vectors WHERE key NOT LIKE 'identity-%'").fetchall()
    for key, value in rng.sample(rows, count):
        blob = bytearray(value)
        bit = rng.randrange(len(blob) * 8)
        blob[bit // 8] ^= 1 << (bit % 8)
        db.execute("UPDATE vectors SET value = ? WHERE key = ?", (bytes(blob), key))
    db.commit()
    db.close()


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_flipped_bit_is_a_miss_deleted_counted_and_warned_of_once(
    tmp_path: Path, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cache.sqlite"
    server = Server()
    make(server, path, driver).embed(TEXTS)
    _flip_bits(path, random.Random(1), 2)
    with caplog.at_level(logging.WARNING, logger="hf_infer_core"):
        client = make(server, path, driver)
        assert client.embed(TEXTS) == [server.vector(t) for t in TEXTS]
    assert client.cache_stats.errors == 2 and client.cache_stats.misses == 2 and client.cache_stats.hits == 4
    assert len([r for r in caplog.records if "checksum" in r.getMessage()]) == 1
    again = make(server, path, driver)
    assert again.embed(TEXTS) == [server.vector(t) for t in TEXTS] and again.cache_stats.hits == 6  # replaced


def test_random_corruption_never_gives_a_wrong_vector(tmp_path: Path) -> None:
    server = Server()
    wrong = 0
    for trial in range(40):
        path = tmp_path / f"cache-{trial}.sqlite"
        make(server, path).embed(TEXTS)
        _flip_bits(path, random.Random(trial), 1 + trial % 3)
        got = make(server, path).embed(TEXTS)
        wrong += sum(g != server.vector(t) for g, t in zip(got, TEXTS, strict=True))
    assert wrong == 0


# ---------------------------------------------------------------------- 5. the credential


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_key_the_endpoint_refuses_is_served_nothing_from_a_shared_store(driver: str) -> None:
    store = InMemoryByteStore()  # shared by two tenants, as a Redis would be
    server = Server()
    server.keys = {SECRET}
    make(server, store, driver).embed(TEXTS)
    sent = sum(server.sent.values())
    intruder = make(server, store, driver, key="hf_not_a_valid_key_000")
    with pytest.raises(AuthenticationError):
        intruder.embed(TEXTS)  # no vector, and no answer to "is this text cached?"
    assert sum(server.sent.values()) == sent and intruder.cache_stats.hits == 0
    server.keys.add("hf_second_valid_key_111")  # another valid key: its own namespace
    other = make(server, store, driver, key="hf_second_valid_key_111")
    assert other.embed(TEXTS) == [server.vector(t) for t in TEXTS] and other.cache_stats.hits == 0


# ---------------------------------------------------------------------- 6. a long-lived client through a redeploy


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_long_lived_client_notices_a_redeploy_and_stores_nothing_under_the_old_model(
    tmp_path: Path, driver: str
) -> None:
    path = tmp_path / "cache.sqlite"
    server = Server("sha1")
    clock = FakeClock()
    client = make(server, path, driver, clock=clock)
    client.embed(TEXTS[:3])
    server.model = "sha2"  # redeployed under the client, connections kept
    fresh = client.embed(TEXTS[3:])  # misses: each request's own probe says the model changed
    assert fresh == [server.vector(t) for t in TEXTS[3:]]
    # The next call verifies first: sha1's vectors are not sha2's.
    assert client.embed(TEXTS[:3]) == [server.vector(t) for t in TEXTS[:3]]
    server.model = "sha1"  # rolled back: a fresh client gets sha1's vectors, never sha2's
    rolled = make(server, path, driver)
    assert rolled.embed(TEXTS) == [server.vector(t) for t in TEXTS]
    assert rolled.cache_stats.hits == 3  # sha1's own first three, kept under sha1's anchor


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_model_is_verified_again_after_a_minute_of_use(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "cache.sqlite"
    server = Server("sha1")
    clock = FakeClock()
    client = make(server, path, driver, clock=clock)
    client.embed(TEXTS)
    probes = server.probes
    assert client.embed(TEXTS) and server.probes == probes  # all hits: no request at all
    server.model = "sha2"  # redeployed while nothing was sent
    clock.now += VERIFY_EVERY
    assert client.embed(TEXTS) == [server.vector(t) for t in TEXTS]
    assert server.probes == probes + 2  # one probe alone, one inside the request that sent the misses


# ---------------------------------------------------------------------- 7. nothing degraded is stored


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_document_pooled_during_a_tokenize_outage_is_not_stored(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "cache.sqlite"
    info = {"model_id": "m", "max_input_length": 12, "max_client_batch_size": 32}
    long_document = " ".join(f"w{i}" for i in range(25))
    wide = {"strategy": "word", "max_chunk_size": 25, "overlap": 0}  # chunks over the model's 12 tokens
    sound = make(Server(info=info), None, driver, chunking=wide).embed_documents([long_document])
    server = Server(info=info)
    server.tokenize_fails = True
    during = make(server, path, driver, chunking=wide).embed_documents([long_document])
    assert during != sound  # pooled from 413 pieces, not from fitted chunks
    server.tokenize_fails = False
    after = make(server, path, driver, chunking=wide)
    assert after.embed_documents([long_document]) == sound
    assert after.cache_stats.documents == 0  # the outage's document vector was never stored


# ---------------------------------------------------------------------- settings that decide a pooled vector


def _tokenizer(per_character: bool) -> Any:
    """A word-level tokenizer (a token a word) or a character-level one (a token a character)."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Regex, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz0123456789 ")}}
    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    split = Regex(".") if per_character else Regex(r"\S+")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(split, behavior="isolated")
    return tokenizer


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_document_vector_fitted_with_another_tokenizer_is_never_served(tmp_path: Path, driver: str) -> None:
    path = tmp_path / "cache.sqlite"
    info = {"model_id": "m", "max_input_length": 12, "max_client_batch_size": 32}
    document = " ".join(f"w{i}" for i in range(10))  # 10 words: 10 tokens, or 29 by the character
    by_word, by_character = _tokenizer(False), _tokenizer(True)
    expected = make(Server(info=info), None, driver, tokenizer=by_character).embed_documents([document])
    make(Server(info=info), path, driver, tokenizer=by_word).embed_documents([document])
    other = make(Server(info=info), path, driver, tokenizer=by_character)
    assert other.embed_documents([document]) == expected  # fitted into pieces by its own tokenizer
    assert other.cache_stats.documents == 0
