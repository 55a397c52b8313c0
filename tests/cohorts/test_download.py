"""CohortDownloader request/response handling (HTTP mocked with ``responses``)."""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import responses

from amplitude_experiment._backoff import Backoff
from amplitude_experiment.cohorts import (
    Cohort,
    CohortDownloadCancelled,
    CohortDownloader,
    CohortDownloadError,
    CohortTooLarge,
)
from amplitude_experiment.testing import ManualClock
from amplitude_experiment.version import LIBRARY

SERVER = "https://cohort.example"
URL = SERVER + "/sdk/v1/cohort/c1"
API_KEY = "api-key-1234"
SECRET = "very-secret-key-5678"
TOKEN = base64.b64encode(f"{API_KEY}:{SECRET}".encode()).decode()
BODY = {"cohortId": "c1", "groupType": "User", "groupTypeId": 0, "lastModified": 1700000000000, "size": 3,
        "memberIds": ["u1", "u2", "u3"]}


class RecordingBackoff(Backoff):
    """A fast backoff that remembers what it was asked."""

    def __init__(self) -> None:
        super().__init__(0.001, 0.002)
        self.calls: List[Tuple[int, Optional[float]]] = []

    def delay(self, failures: int, retry_after: Optional[float] = None) -> float:
        self.calls.append((failures, retry_after))
        return super().delay(failures, retry_after)


def req_kwargs(mock: responses.RequestsMock, index: int) -> Dict[str, Any]:
    """The keyword arguments requests passed to the adapter for the index-th call (timeout, verify...)."""
    kwargs: Dict[str, Any] = getattr(mock.calls[index].request, "req_kwargs")  # noqa: B009 - set by responses
    return kwargs


@pytest.fixture
def backoff() -> RecordingBackoff:
    return RecordingBackoff()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


@pytest.fixture
def downloader(session: requests.Session, backoff: RecordingBackoff) -> CohortDownloader:
    return CohortDownloader(session, SERVER + "/", API_KEY, SECRET, 100, request_timeout=2.5, backoff=backoff,
                            max_attempts=3, not_ready_attempts=4, not_ready_wait=0.001, deadline_seconds=10.0)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def test_request_shape_and_parse(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, json=BODY)
    cohort = downloader.download("c1")
    assert cohort == Cohort.of("c1", ["u1", "u2", "u3"], group_type="User", last_modified=1700000000000)
    assert cohort is not None and cohort.size == 3
    assert [m in cohort.members for m in ("u1", "u2", "u3", "u4", "")] == [True, True, True, False, False]
    request = mock.calls[0].request
    assert request.url == URL + "?maxCohortSize=100"
    assert request.headers["Authorization"] == f"Basic {TOKEN}"
    assert request.headers["X-Amp-Exp-Library"] == LIBRARY
    assert req_kwargs(mock, 0)["timeout"] == 2.5
    assert req_kwargs(mock, 0)["verify"] not in (False, None)


def test_last_modified_is_sent_and_204_means_unchanged(downloader: CohortDownloader,
                                                        mock: responses.RequestsMock) -> None:
    mock.get(URL, status=204)
    assert downloader.download("c1", last_modified=1700000000000) is None
    assert mock.calls[0].request.url == URL + "?maxCohortSize=100&lastModified=1700000000000"
    assert len(mock.calls) == 1


def test_204_without_last_modified_is_an_error(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, status=204)
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    assert caught.value.status_code == 204


def test_cohort_id_is_quoted_in_the_path(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(SERVER + "/sdk/v1/cohort/a%2Fb%20c", json=dict(BODY, cohortId="a/b c"))
    assert downloader.download("a/b c").id == "a/b c"  # type: ignore[union-attr]


def test_202_is_polled_until_ready(downloader: CohortDownloader, mock: responses.RequestsMock,
                                   backoff: RecordingBackoff) -> None:
    for _ in range(3):
        mock.get(URL, status=202)
    mock.get(URL, json=BODY)
    assert downloader.download("c1") is not None
    assert len(mock.calls) == 4
    assert backoff.calls == []  # not-ready polls are not failures


def test_202_forever_is_bounded(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, status=202)
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    assert caught.value.status_code == 202
    assert "not ready" in str(caught.value)
    assert len(mock.calls) == 4  # not_ready_attempts


def test_413_is_too_large_without_retry(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, status=413, json={"code": 413})
    with pytest.raises(CohortTooLarge) as caught:
        downloader.download("c1")
    assert caught.value.status_code == 413
    assert caught.value.cohort_id == "c1"
    assert caught.value.max_cohort_size == 100
    assert len(mock.calls) == 1


def test_429_with_retry_after_then_503_then_success(downloader: CohortDownloader, mock: responses.RequestsMock,
                                                      backoff: RecordingBackoff) -> None:
    mock.get(URL, status=429, headers={"Retry-After": "3"})
    mock.get(URL, status=503)
    mock.get(URL, json=BODY)
    assert downloader.download("c1") is not None
    assert len(mock.calls) == 3
    assert backoff.calls == [(1, 3.0), (2, None)]


def test_5xx_forever_is_bounded(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, status=500)
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    assert caught.value.status_code == 500
    assert str(caught.value) == "cohort c1 download failed after 3 attempts: HTTP 500"
    assert len(mock.calls) == 3


def test_network_error_is_retried_then_bounded(downloader: CohortDownloader, mock: responses.RequestsMock,
                                                backoff: RecordingBackoff) -> None:
    mock.get(URL, body=requests.ConnectionError("refused"))
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    assert len(mock.calls) == 3  # max_attempts
    assert [failures for failures, _ in backoff.calls] == [1, 2]
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert isinstance(caught.value, OSError)


def test_network_error_then_success(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, body=requests.ConnectTimeout("slow"))
    mock.get(URL, json=BODY)
    assert downloader.download("c1") is not None
    assert len(mock.calls) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_fail_at_once(downloader: CohortDownloader, mock: responses.RequestsMock,
                                    status: int) -> None:
    mock.get(URL, status=status, json={"code": status})
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    assert not isinstance(caught.value, CohortTooLarge)
    assert caught.value.status_code == status
    assert f"returned HTTP {status}" in str(caught.value)
    assert len(mock.calls) == 1


@pytest.mark.parametrize(
    "body, detail",
    [
        (b"<html>not json", "not valid JSON (JSONDecodeError)"),
        (b"[\x80]", "not valid JSON (UnicodeDecodeError)"),
        (b"[]", "expected a JSON object, got list"),
        (b'{"groupType": "User", "lastModified": 1}', "memberIds is missing or not an array"),
        (b'{"groupType": "User", "lastModified": 1, "memberIds": "u1"}', "memberIds is missing or not an array"),
        (b'{"groupType": "User", "lastModified": 1, "memberIds": ["u1", 2]}', "memberIds holds a non-string member"),
        (b'{"groupType": "User", "lastModified": 1, "memberIds": [["u1"]]}', "memberIds holds a non-string member"),
        (b'{"groupType": "User", "lastModified": "1", "memberIds": []}', "lastModified is missing or not an integer"),
        (b'{"groupType": "User", "lastModified": true, "memberIds": []}', "lastModified is missing or not an integer"),
        (b'{"lastModified": 1, "memberIds": []}', "groupType is missing or not a string"),
        (b'{"cohortId": "c2", "groupType": "User", "lastModified": 1, "memberIds": []}', "cohortId is 'c2'"),
    ],
)
def test_unusable_body_is_an_error_without_retry(downloader: CohortDownloader, mock: responses.RequestsMock,
                                                 body: bytes, detail: str) -> None:
    mock.get(URL, body=body)
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    assert str(caught.value) == f"cohort c1 response was unusable: {detail}"
    assert caught.value.status_code == 200
    assert len(mock.calls) == 1


def test_deadline_stops_retrying_before_a_long_wait(session: requests.Session, mock: responses.RequestsMock) -> None:
    clock = ManualClock()  # nobody advances it: a wait would block the test
    slow = CohortDownloader(session, SERVER, API_KEY, SECRET, 100, backoff=Backoff(30.0, 30.0), max_attempts=100,
                            deadline_seconds=5.0, clock=clock)
    mock.get(URL, status=503)
    with pytest.raises(CohortDownloadError) as caught:
        slow.download("c1")
    assert str(caught.value) == "cohort c1 download ran out of time; last error: HTTP 503"
    assert caught.value.status_code == 503
    assert len(mock.calls) == 1
    assert clock.sleepers == 0


def test_caller_deadline_caps_request_timeout(session: requests.Session, mock: responses.RequestsMock) -> None:
    clock = ManualClock(start=100.0)
    downloader = CohortDownloader(session, SERVER, API_KEY, SECRET, 100, request_timeout=2.5, clock=clock)
    mock.get(URL, json=BODY)
    downloader.download("c1", deadline=101.0)
    assert req_kwargs(mock, 0)["timeout"] == 1.0


def test_retry_waits_go_through_the_clock(session: requests.Session, mock: responses.RequestsMock) -> None:
    """Backoff and Retry-After waits are clock waits: driven by ManualClock, no real sleeping."""
    clock = ManualClock()
    backoff = Backoff(4.0, 4.0, random_fn=lambda: 0.0)  # every wait 2.0 s
    downloader = CohortDownloader(session, SERVER, API_KEY, SECRET, 100, backoff=backoff, max_attempts=3, clock=clock)
    mock.get(URL, status=429, headers={"Retry-After": "3"})  # longer than the backoff: honoured
    mock.get(URL, status=503)
    mock.get(URL, json=BODY)
    result: List[Any] = []
    worker = threading.Thread(target=lambda: result.append(downloader.download("c1")))
    worker.start()
    assert clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 3.0  # honoured: max(backoff 2.0, Retry-After 3.0)
    clock.advance(3.0)
    assert clock.wait_for_sleepers(1)
    assert clock.next_deadline() == 2.0
    clock.advance(2.0)
    worker.join(5)
    assert len(mock.calls) == 3 and result and result[0] is not None


def test_cancelled_downloader_makes_no_request(downloader: CohortDownloader, mock: responses.RequestsMock) -> None:
    mock.get(URL, json=BODY)
    downloader.cancel()
    with pytest.raises(CohortDownloadCancelled):
        downloader.download("c1")
    assert len(mock.calls) == 0


def test_secrets_never_logged_or_in_errors(downloader: CohortDownloader, mock: responses.RequestsMock,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="amplitude_experiment.cohorts")
    mock.get(URL, status=503)
    mock.get(URL, body=requests.ConnectionError("refused"))
    with pytest.raises(CohortDownloadError) as caught:
        downloader.download("c1")
    text = caplog.text + str(caught.value) + repr(downloader)
    assert caplog.records  # retries were logged
    for secret in (API_KEY, SECRET, TOKEN):
        assert secret not in text


def test_retry_after_as_an_http_date_is_read_against_the_clock(session: requests.Session,
                                                                mock: responses.RequestsMock) -> None:
    backoff = RecordingBackoff()
    clock = ManualClock(epoch=1_700_000_000.0)  # Tue, 14 Nov 2023 22:13:20 GMT
    downloader = CohortDownloader(session, SERVER, API_KEY, SECRET, 100, backoff=backoff, clock=clock)
    mock.get(URL, status=503, headers={"Retry-After": "Tue, 14 Nov 2023 22:14:00 GMT"})
    mock.get(URL, json=BODY)
    worker = threading.Thread(target=downloader.download, args=("c1",))
    worker.start()
    assert clock.wait_for_sleepers(1)
    clock.advance(0.01)  # the fast test backoff caps the wait
    worker.join(5)
    assert backoff.calls == [(1, 40.0)]
    assert len(mock.calls) == 2
