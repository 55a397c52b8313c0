"""Cohort membership download for cohort-targeted flags."""
