"""Which model a cached vector belongs to, checked by what the model computes: no I/O.

Rules, in the order they are applied:

1. What an endpoint says of itself (``/info``'s ``model_id``, ``model_sha``) is a hint, never
   proof: two local models both say ``model_id "/data"``, a redeploy behind a gateway says
   nothing. The proof is the vector of :data:`PROBE_TEXT`, asked of the endpoint with the same
   request options as the texts it stands for.
2. A probe vector is matched against the *anchors* a store has seen for this namespace (URL,
   credential, options): within :data:`TOLERANCE` of one, it is that anchor's model; else it is
   a new model and gets a new anchor. An anchor's id is in every cache key, so a new model means
   new keys, never old vectors. The tolerance absorbs the noise of one model run twice (a text
   alone or in a batch: 1e-7 on the CPU in float32) and no change of weights, pooling or dtype
   (float16 against float32 of all-MiniLM-L6-v2: 1.8e-4 on a component of about 0.15, 1.2e-3
   relative): a false miss costs a request, a false hit corrupts an index.
3. Hits are served only while the identity was verified within :data:`VERIFY_EVERY` seconds
   and nothing since (a lost connection, a 503, a probe that did not match) said the model may
   have changed; otherwise the next call verifies first.
4. Every request whose vectors will be stored carries the probe text as its last input, so the
   answer certifies itself: its vectors are stored only when its probe vector matches the
   anchor they are keyed by. A rolling redeploy, where two models answer side by side, can then
   never store one model's vector under the other's keys.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["MAX_ANCHORS", "PROBE_TEXT", "TOLERANCE", "VERIFY_EVERY", "Anchor", "Identity", "same_model"]

# Short (a few tokens on any tokenizer, never near a limit), fixed for good: changing it changes
# every anchor, which is a false miss for every cache in use.
PROBE_TEXT = "hf-infer identity probe 7"
# Seconds a verified identity serves hits before it is verified again (rule 3).
VERIFY_EVERY = 60.0
# Largest difference of two probe vectors of one model, relative to their largest component.
TOLERANCE = 1e-4
# Anchors kept per namespace (the newest): a model redeployed back and forth still hits.
MAX_ANCHORS = 16

_REGISTRY = b"A1"
_GENERATIONS = itertools.count(1)  # next() is atomic in CPython: threads may invalidate at once


@dataclass(frozen=True, slots=True)
class Anchor:
    """A model seen behind one namespace: its id (in every cache key) and its probe vector."""

    id: str
    vector: tuple[float, ...]


def same_model(a: Sequence[float], b: Sequence[float], tolerance: float = TOLERANCE) -> bool:
    """True when two probe vectors are one model's (rule 2): same size, every component within tolerance."""
    if len(a) != len(b) or not a:
        return False
    scale = max(max(abs(x) for x in a), max(abs(y) for y in b))
    if not math.isfinite(scale) or scale == 0.0:
        return False
    return max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tolerance * scale


def anchor_id(vector: Sequence[float]) -> str:
    """A new anchor's id: the digest of its probe vector (two processes seeing the same bits agree)."""
    return hashlib.blake2b(struct.pack(f"<{len(vector)}d", *vector), digest_size=16).hexdigest()


def encode_anchors(anchors: Sequence[Anchor]) -> bytes:
    """The stored form of a namespace's anchors (the cache adds its own checksum)."""
    out = [_REGISTRY]
    for anchor in anchors:
        out += [bytes.fromhex(anchor.id), struct.pack(f"<I{len(anchor.vector)}d", len(anchor.vector), *anchor.vector)]
    return b"".join(out)


def decode_anchors(blob: bytes | None) -> list[Anchor]:
    """The anchors ``blob`` holds; none for a missing or malformed value (a false miss, never a wrong anchor)."""
    if not blob or blob[:2] != _REGISTRY:
        return []
    anchors, at = [], 2
    try:
        while at < len(blob):
            ident = blob[at : at + 16].hex()
            (size,) = struct.unpack_from("<I", blob, at + 16)
            vector = struct.unpack_from(f"<{size}d", blob, at + 20)
            anchors.append(Anchor(ident, vector))
            at += 20 + 8 * size
    except struct.error:
        return []
    return anchors


class Identity:
    """What a client knows of the model behind one kind of request (documents, or queries with their prompt).

    ``registry_key`` is where a store keeps this namespace's anchors. ``generation`` changes
    whenever the identity may have changed: a flow that stores what it sent compares it before
    and after, and stores nothing when it moved.
    """

    __slots__ = ("_clock", "anchor", "generation", "registry_key", "verified_at")

    def __init__(self, registry_key: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry_key = registry_key
        self._clock = clock
        self.anchor: Anchor | None = None
        self.verified_at = -math.inf  # clock time of the last probe that matched
        self.generation = next(_GENERATIONS)

    def __repr__(self) -> str:
        anchor = self.anchor.id[:8] if self.anchor else None
        return f"<Identity anchor={anchor} verified={not self.due} generation={self.generation}>"

    @property
    def due(self) -> bool:
        """True when hits may not be served before a probe verifies the model again (rule 3)."""
        return self.anchor is None or self._clock() - self.verified_at >= VERIFY_EVERY

    @property
    def current(self) -> str | None:
        """The anchor id to key vectors by, while verified; ``None`` otherwise."""
        return None if self.due or self.anchor is None else self.anchor.id

    def invalidate(self) -> None:
        """The model may have changed (a lost connection, a 503, a probe that did not match)."""
        self.verified_at = -math.inf
        self.generation = next(_GENERATIONS)

    def certify(self, probe: Sequence[float]) -> bool:
        """A request's own probe vector (rule 4): True when it matches the anchor its vectors are keyed by."""
        anchor = self.anchor
        if anchor is not None and same_model(anchor.vector, probe):
            self.verified_at = max(self.verified_at, self._clock())
            return True
        self.invalidate()
        return False

    def resolve(self, stored: bytes | None, probe: Sequence[float]) -> bytes | None:
        """Match a lone probe's vector to the store's anchors (rule 2); return the anchors to store, if new.

        A vector that matches none is a new anchor, kept with the newest :data:`MAX_ANCHORS`.
        """
        anchors = decode_anchors(stored)
        vector = tuple(float(v) for v in probe)
        match = next((a for a in reversed(anchors) if same_model(a.vector, vector)), None)
        changed = match is None
        if match is None:
            match = Anchor(anchor_id(vector), vector)
            anchors = [*[a for a in anchors if a.id != match.id][-(MAX_ANCHORS - 1) :], match]
        if self.anchor is None or self.anchor.id != match.id:
            self.generation = next(_GENERATIONS)
        self.anchor = match
        self.verified_at = self._clock()
        return encode_anchors(anchors) if changed else None
