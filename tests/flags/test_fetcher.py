"""Flag download request/response handling (HTTP mocked with ``responses``)."""

from __future__ import annotations

import pytest
import requests
import responses

from amplitude_experiment.exceptions import FetchError
from amplitude_experiment.flags import FlagFetcher
from amplitude_experiment.version import LIBRARY, USER_AGENT

URL = "https://flags.example/sdk/v2/flags"


@pytest.fixture
def fetcher() -> FlagFetcher:
    session = requests.Session()
    yield FlagFetcher(session, "https://flags.example", "server-abc", timeout=2.5)
    session.close()


@responses.activate
def test_request_shape(fetcher: FlagFetcher) -> None:
    responses.get(URL, json=[{"key": "f", "variants": {}, "segments": []}])
    flags, body = fetcher.fetch()
    assert flags == [{"key": "f", "variants": {}, "segments": []}]
    assert body == b'[{"key": "f", "variants": {}, "segments": []}]'
    request = responses.calls[0].request
    assert request.url == URL + "?v=0"
    assert request.headers["Authorization"] == "Api-Key server-abc"
    assert request.headers["X-Amp-Exp-Library"] == LIBRARY
    assert request.headers["User-Agent"] == USER_AGENT  # issue 10 point 7: the same User-Agent everywhere
    assert request.req_kwargs["timeout"] == 2.5
    assert request.req_kwargs["verify"] not in (False, None)  # TLS verification stays on


@responses.activate
@pytest.mark.parametrize("status", [404, 429, 500, 503])
def test_bad_status_is_a_fetch_error_with_the_status(fetcher: FlagFetcher, status: int) -> None:
    responses.get(URL, status=status, body="nope")
    with pytest.raises(FetchError) as caught:
        fetcher.fetch()
    assert caught.value.status_code == status
    assert str(caught.value) == f"flag download from {URL} returned HTTP {status}"
    assert isinstance(caught.value, OSError)


@responses.activate
@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_named_as_such(fetcher: FlagFetcher, status: int) -> None:
    # issue 10 point 7: a 401/403 on flags says the deployment key was rejected (and never shows it)
    responses.get(URL, status=status, body="nope")
    with pytest.raises(FetchError) as caught:
        fetcher.fetch()
    assert caught.value.status_code == status
    assert str(caught.value) == (f"flag download from {URL} returned HTTP {status}: the deployment key was rejected "
                                 "(check that it is a server deployment key of this project)")
    assert "server-abc" not in str(caught.value)


@responses.activate
def test_etag_is_sent_back_only_after_the_server_gave_one(fetcher: FlagFetcher) -> None:
    # Amplitude documents no ETag here: without one, every request is the documented plain GET.
    responses.get(URL, body=b"[]")
    assert fetcher.fetch_body() == b"[]"
    assert fetcher.fetch_body() == b"[]"
    assert [c.request.headers.get("If-None-Match") for c in responses.calls] == [None, None]
    responses.replace(responses.GET, URL, body=b"[1]", headers={"ETag": '"v1"'})
    assert fetcher.fetch_body() == b"[1]"
    responses.replace(responses.GET, URL, status=304)
    assert fetcher.fetch_body() is None  # RFC 9110: 304 -> the stored representation is current
    fetcher.forget_etag()
    responses.replace(responses.GET, URL, body=b"[2]")
    assert fetcher.fetch_body() == b"[2]"
    assert [c.request.headers.get("If-None-Match") for c in responses.calls] == [None, None, None, '"v1"', None]


@responses.activate
@pytest.mark.parametrize(
    "body, detail",
    [
        (b"<html>not json", "flag configs are not valid JSON (JSONDecodeError)"),
        (b'{"flags": []}', "flag configs must be a JSON array, got dict"),
        (b"null", "flag configs must be a JSON array, got NoneType"),
        (b"[\x80]", "flag configs are not valid JSON (UnicodeDecodeError)"),
    ],
)
def test_unusable_body_is_a_fetch_error(fetcher: FlagFetcher, body: bytes, detail: str) -> None:
    responses.get(URL, body=body)
    with pytest.raises(FetchError) as caught:
        fetcher.fetch()
    assert str(caught.value) == f"flag download from {URL} was unusable: {detail}"


@responses.activate
def test_network_error_is_chained(fetcher: FlagFetcher) -> None:
    responses.get(URL, body=requests.ConnectionError("refused"))
    with pytest.raises(FetchError) as caught:
        fetcher.fetch()
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert "server-abc" not in str(caught.value)


def test_a_key_that_is_not_a_valid_header_never_leaks() -> None:
    session = requests.Session()
    fetcher = FlagFetcher(session, "https://flags.example", "server-secret\nX-Evil: 1", timeout=1)
    with pytest.raises(FetchError) as caught:
        fetcher.fetch()
    session.close()
    assert "server-secret" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
