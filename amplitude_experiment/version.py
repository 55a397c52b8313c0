"""Version and library identification."""

__version__ = "0.1.0"

#: Sent as ``X-Amp-Exp-Library`` and as the ``library`` field of tracked events.
LIBRARY = f"amplitude-local-evaluation/{__version__}"

#: The ``User-Agent`` of every request this package makes (flags, stream, cohorts, events, remote).
USER_AGENT = LIBRARY
