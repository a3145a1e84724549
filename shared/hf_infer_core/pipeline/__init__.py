"""The chunked pipeline: what every task that sends chunks of texts shares, and no I/O.

Its options (a cache, prefixes, fitting), its core (batches and their 413 halving, token fitting
with a local tokenizer or ``/tokenize``, the cache's keys tied to the model's verified identity),
its flows (check, chunk, fit, batch, look up and store, send, stream) and the in-order assembly of
streams. A task (``embeddings/``) adds its bodies, answers and pooling; the drivers perform the
steps. Nothing here performs I/O (an import-linter contract checks it).
"""

from __future__ import annotations

from ._core import ChunkedCore, NoTokenizeRoute
from ._jobs import ChunkedJobs
from ._options import ChunkedOptionArgs, ChunkedOptions
from ._stream import StreamAssembler

__all__ = ["ChunkedCore", "ChunkedJobs", "ChunkedOptionArgs", "ChunkedOptions", "NoTokenizeRoute", "StreamAssembler"]
