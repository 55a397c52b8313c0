"""Cohort membership download for cohort-targeted flags."""

from .config import CohortSyncConfig
from .download import CohortDownloadCancelled, CohortDownloader, CohortDownloadError, CohortTooLarge
from .loader import CohortLoader, CohortLoadReport
from .members import Members
from .storage import USER_GROUP_TYPE, Cohort, CohortStore

__all__ = [
    "Cohort",
    "CohortDownloadCancelled",
    "CohortDownloadError",
    "CohortDownloader",
    "CohortLoadReport",
    "CohortLoader",
    "CohortStore",
    "CohortSyncConfig",
    "CohortTooLarge",
    "Members",
    "USER_GROUP_TYPE",
]
