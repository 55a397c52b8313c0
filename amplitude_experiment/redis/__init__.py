"""Run many processes as one client: shared flag and cohort downloads and fleet-wide event dedup on Redis.

Needs the ``redis`` extra (``pip install "amplitude-local-evaluation[redis]"``).
"""

from .claims import RedisClaims
from .cohorts import RedisCohortSource
from .flags import RedisFlagSource
from .fleet import DEFAULT_SOCKET_TIMEOUT, RedisFleet

__all__ = ["DEFAULT_SOCKET_TIMEOUT", "RedisClaims", "RedisCohortSource", "RedisFleet", "RedisFlagSource"]
