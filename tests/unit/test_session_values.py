"""Settings are values: a session is kept, handed on or closed as calls and assignments interleave."""

from __future__ import annotations

from langchain_hf_infer import HFInferEmbeddings

# ------------------------------------------------------------------ settings are values


def test_an_assignment_that_changes_no_request_keeps_the_session() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    session = emb._session
    emb.show_progress = False  # the same value
    emb.inference_id = "hf-infer"
    assert emb._session is session
    emb.batch_size = 7
    assert emb._session is not session and emb._session.options.batch_size == 7


def test_a_client_in_use_is_closed_after_its_last_call_not_before() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    with emb._session.using() as client:
        emb.url = "http://other.test/embed"  # detaches the client the call holds
        assert not client._wire.http.is_closed  # still the call's
    assert client._wire.http.is_closed  # closed when its last call ended
    with emb._session.using() as new:
        assert new is not client and new.endpoint.url == "http://other.test/embed"


def test_a_client_in_use_hands_its_connections_on_when_the_endpoint_stays() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    with emb._session.using() as client:
        connections = client._wire.http
        emb.batch_size = 9
        assert not connections.is_closed
    new = emb._session.client
    assert new is not client and new.options.batch_size == 9
    assert new._wire.http is connections and not connections.is_closed  # shared: the old client's call ended


def test_connections_a_call_still_reads_from_outlive_the_client_that_adopted_them() -> None:
    """The CI failure: a call on the old client, its connections adopted, the new client closed mid-call."""
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k")
    with emb._session.using() as old:
        connections = old._wire.http
        emb.batch_size = 9  # the new client shares the old one's connections
        new = emb._session.client
        assert new._wire.http is connections
        emb.close()  # closes the new client while the old one's call is still in flight
        assert not connections.is_closed  # the call in flight can still read its answer
    assert connections.is_closed  # the old client's last call ended: nothing uses them now


def test_a_rebuild_that_keeps_the_endpoint_keeps_discovery_connections_and_bucket() -> None:
    emb = HFInferEmbeddings(url="http://endpoint.test/embed", api_key="k", requests_per_minute=600)
    old = emb._session.client
    old._jobs.discovered = True
    old._core._use_info({"model_id": "m", "max_client_batch_size": 5})
    emb.batch_size = 8
    new = emb._session.client
    assert new is not old
    assert new._jobs.discovered and new.server_info == {"model_id": "m", "max_client_batch_size": 5}
    assert new.batch_size == 5  # /info's cap applies to the new batch size too
    assert new.rate_limiter is old.rate_limiter  # no fresh burst
    assert new._wire.http is old._wire.http and not new._wire.http.is_closed  # connections shared
