"""``hf-infer embed``'s job description: what decides a row, and the model compared within the probe's tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest

pa = pytest.importorskip("pyarrow")  # hf-infer embed's (the ray extra); the lowest-versions run has none

from hf_infer_core import InferenceEndpoint  # noqa: E402
from hf_infer_server._embed_input import BadInput  # noqa: E402
from hf_infer_server._embed_job import (  # noqa: E402
    assemble,
    changes,
    check_parts,
    describe,
    parts_for,
    up_to_date,
    write_part,
)

URL = "http://tei.test/embed"


def _job(probe: list[float] | None = (0.5, -0.25), url: str = URL, chunks: bool = False, digest: str = "d1") -> dict:
    endpoint = InferenceEndpoint.from_url(url, "hf_key_1")
    return describe(digest, "text", chunks, endpoint, list(probe) if probe is not None else None)


def test_what_decides_a_row_is_named_when_it_changes() -> None:
    job = _job()
    assert changes(job, _job()) == []
    assert changes(job, _job(probe=[0.5, -0.25 + 1e-9])) == []  # one model's noise
    assert changes(job, _job(probe=[0.5, -0.2])) == ["the model behind the endpoint"]
    assert changes(job, _job(url="http://tei.test/embed?model=large"))[0].startswith("the endpoint")
    assert changes(job, _job(chunks=True)) == ["--chunks"] and changes(job, _job(digest="d2")) == ["the input's rows"]
    assert changes(job, _job(probe=None)) == []  # the model not asked yet: not compared
    assert "hf_key_1" not in str(job)  # never the key


def test_a_finished_output_is_up_to_date_only_for_the_same_model(tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    job = _job()
    parts, done = parts_for(output, job, restart=False)
    assert done == 0
    write_part(parts, 0, pa.table({"text": ["a"], "embedding": [[1.0, 2.0]]}))
    assert parts_for(output, job, restart=False)[1] == 1  # resumed after the written row
    with pytest.raises(BadInput, match="changed: the model behind the endpoint"):
        parts_for(output, _job(probe=[0.9, 0.1]), restart=False)
    assert check_parts(output, _job(probe=None), restart=False)
    assert assemble(parts, output, job) == 1 and not parts.exists()
    assert up_to_date(output, job) and not up_to_date(output, _job(probe=[0.9, 0.1]))
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))
