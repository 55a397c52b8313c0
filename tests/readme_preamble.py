"""Run before each README code block: Amplitude's hosts answered by the loopback stand-in.

The README shows production code (real hosts, placeholder keys). To execute it offline, every
``requests.Session`` created in this interpreter gets an adapter that sends requests for
Amplitude's hosts to an :class:`AmplitudeStandIn` serving a few flags the README uses.
Nothing else about the code block changes.
"""

from __future__ import annotations

import atexit
from typing import Any

import requests
import requests.adapters

from amplitude_experiment.testing import AmplitudeStandIn, FlagBuilder, condition, experiment, on_flag, prop

AMPLITUDE_HOSTS = (
    "https://api.lab.amplitude.com", "https://api.lab.eu.amplitude.com",
    "https://flag.lab.eu.amplitude.com",
    "https://stream.lab.amplitude.com", "https://stream.lab.eu.amplitude.com",
    "https://cohort-v2.lab.amplitude.com", "https://cohort-v2.lab.eu.amplitude.com",
    "https://api2.amplitude.com", "https://api.eu.amplitude.com",
)

README_FLAGS = [
    experiment("checkout-redesign", variants={"control": 50, "treatment": 50}),
    on_flag("dark-mode"),
    on_flag("new-nav"),
    FlagBuilder("pro-features").variant("on").rule("Pro", [condition(prop("plan"), "is", "pro")], "on").build(),
]

stand_in = AmplitudeStandIn(flags=README_FLAGS).start()
atexit.register(stand_in.stop)


class _ToStandIn(requests.adapters.HTTPAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        for host in AMPLITUDE_HOSTS:
            if url.startswith(host):
                request.url = stand_in.url + url[len(host):]
                break
        return super().send(request, **kwargs)


_original_init = requests.Session.__init__


def _session_init(self: requests.Session) -> None:
    _original_init(self)
    self.mount("https://", _ToStandIn())


requests.Session.__init__ = _session_init  # type: ignore[method-assign]
