"""Run the official SDK as a black box: evaluate users against flags, print results.

Runs only inside a separate virtualenv that has ``amplitude-experiment==1.13.0``
installed (never in ours: both use the import name ``amplitude_experiment``).

Input (stdin, JSON): ``{"flags": [...], "cases": [{"user": {...}, "flag_keys": null | [...]}]}``.
Output (stdout, JSON): a list, one entry per case, of
``{flag_key: {"key", "value", "payload", "metadata"}}`` or ``{"error": "..."}``.

The flags are served from a throwaway HTTP server on 127.0.0.1 and the
reference client downloads them through its public API, so the oracle sees
exactly what a user of the official SDK sees.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    logging.disable(logging.CRITICAL)
    from amplitude_experiment import LocalEvaluationClient, LocalEvaluationConfig, User

    request = json.load(sys.stdin)
    server = _serve(json.dumps(request["flags"]).encode())
    host, port = server.server_address[:2]
    client = LocalEvaluationClient(
        "server-oracle",
        LocalEvaluationConfig(server_url=f"http://{host}:{port}", flag_config_polling_interval_millis=3_600_000),
    )
    client.start()
    out = []
    for case in request["cases"]:
        try:
            user = User(**case["user"])
            keys = case.get("flag_keys")
            variants = client.evaluate_v2(user, set(keys) if keys is not None else None)
            out.append(
                {
                    k: {"key": v.key, "value": v.value, "payload": v.payload, "metadata": v.metadata}
                    for k, v in variants.items()
                }
            )
        except Exception as exc:  # the oracle reports, it does not judge
            out.append({"error": f"{type(exc).__name__}: {exc}"})
    client.stop()
    server.shutdown()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
