"""TLS for real: a loopback HTTPS server with a throw-away CA (trustme).

Verification stays on (style.md: never turned off by us); a custom CA bundle is given the
``requests`` way, through ``LocalEvaluationConfig(session=...)``; a bad certificate is a clear
``FetchError``, never a silent fallback to plain HTTP or to unverified TLS.
"""

from __future__ import annotations

import json
import pathlib
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Tuple

import pytest
import requests

trustme = pytest.importorskip("trustme")

from amplitude_experiment import (  # noqa: E402
    AssignmentConfig,
    FetchError,
    LocalEvaluationClient,
    LocalEvaluationConfig,
    User,
)
from amplitude_experiment.testing import on_flag  # noqa: E402

FLAGS_BODY = json.dumps([on_flag("secure-flag")]).encode()


class _Handler(BaseHTTPRequestHandler):
    received: "list[Any]" = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(FLAGS_BODY)))
        self.end_headers()
        self.wfile.write(FLAGS_BODY)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        _Handler.received.append(json.loads(self.rfile.read(length)))
        body = b'{"code":200,"events_ingested":1,"payload_size_bytes":1,"server_upload_time":1}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _serve(context: ssl.SSLContext) -> Tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"https://localhost:{server.server_address[1]}"


@pytest.fixture
def ca() -> Any:
    return trustme.CA()


@pytest.fixture
def https_url(ca: Any) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server, url = _serve(context)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, session: Any = None, **options: Any) -> LocalEvaluationClient:
    return LocalEvaluationClient("server-key", LocalEvaluationConfig(server_url=url, session=session, **options))


def test_an_unknown_ca_is_refused(https_url: str) -> None:
    client = _client(https_url)
    with pytest.raises(FetchError) as caught:
        client.start()
    client.stop(1)
    assert "SSLError" in str(caught.value) and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert client.evaluate_v2(User(user_id="u")) == {}


def test_a_custom_ca_bundle_through_the_session(https_url: str, ca: Any, tmp_path: pathlib.Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE override Session.verify (psf/requests#3829); the session's
    # explicit CA bundle must win, since that is how users configure a private CA.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    session = requests.Session()
    session.verify = str(bundle)
    _Handler.received = []
    client = _client(https_url, session, assignment_config=AssignmentConfig(
        "analytics-key", server_url=f"{https_url}/2/httpapi"))
    with client:
        assert {k: v.key for k, v in client.evaluate_v2(User(user_id="user-1")).items()} == {"secure-flag": "on"}
    # Events went over the same verified session.
    assert [e["event_type"] for body in _Handler.received for e in body["events"]] == ["[Experiment] Assignment"]
    session.close()


def test_a_certificate_for_another_host_is_refused(ca: Any, tmp_path: pathlib.Path) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("flags.example.org").configure_cert(context)
    server, url = _serve(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    session = requests.Session()
    session.verify = str(bundle)
    try:
        client = _client(url, session)
        with pytest.raises(FetchError) as caught:
            client.start()
        client.stop(1)
        assert "SSLError" in str(caught.value)
        assert "localhost" in str(caught.value)  # says which host did not match
    finally:
        server.shutdown()
        server.server_close()
        session.close()
