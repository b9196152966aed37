"""Validate: schema and business rules, duplicates and lateness; every event ends accepted, rejected or duplicate.

Owns the §2 rules (vectorised Polars expressions), reason codes and messages, duplicate detection and the
event-time watermark. Imports :mod:`tunewatch.schema` and :mod:`tunewatch.ingest`.
"""

from tunewatch.validate.reasons import REASON_MESSAGES, describe
from tunewatch.validate.validator import EnterpriseDataValidator, ValidationResult

__all__ = ["REASON_MESSAGES", "EnterpriseDataValidator", "ValidationResult", "describe"]
