"""Getting flag configs: download, background refresh, and the published snapshot."""

from .fetcher import FlagFetcher
from .store import FlagSnapshot, FlagStore
from .stream import FlagStream

__all__ = ["FlagFetcher", "FlagSnapshot", "FlagStore", "FlagStream"]
