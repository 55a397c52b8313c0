"""``Experiment.initialize_local`` / ``initialize_remote``: one client per deployment key per process."""

from __future__ import annotations

import threading
from typing import Dict, Optional

from .local.client import LocalEvaluationClient
from .local.config import LocalEvaluationConfig
from .remote.client import RemoteEvaluationClient
from .remote.config import RemoteEvaluationConfig

# The official API promises one instance per deployment key; these registries are that promise.
_local_clients: Dict[str, LocalEvaluationClient] = {}
_remote_clients: Dict[str, RemoteEvaluationClient] = {}
_registry_lock = threading.Lock()


class Experiment:
    """Entry point kept for compatibility with the official SDK."""

    @staticmethod
    def initialize_local(api_key: str, config: Optional[LocalEvaluationConfig] = None) -> LocalEvaluationClient:
        """The local-evaluation client for ``api_key``, created on first use.

        Later calls with the same key return the same client (and ignore ``config``).
        """
        with _registry_lock:
            client = _local_clients.get(api_key)
            if client is None:
                client = LocalEvaluationClient(api_key, config)
                _local_clients[api_key] = client
            return client

    @staticmethod
    def initialize_remote(api_key: str, config: Optional[RemoteEvaluationConfig] = None) -> RemoteEvaluationClient:
        """The remote-evaluation client for ``api_key``, created on first use.

        Later calls with the same key return the same client (and ignore ``config``), unless
        that client was closed: then a new one is made with ``config``.
        """
        with _registry_lock:
            client = _remote_clients.get(api_key)
            if client is None or client.closed:
                client = RemoteEvaluationClient(api_key, config)
                _remote_clients[api_key] = client
            return client
