"""Validate: schema and business rules, duplicates and lateness; every event ends accepted, rejected or duplicate.

Owns the §2 rules (vectorised Polars expressions), user business rules (a small safe expression language,
:mod:`~tunewatch.validate.custom_rules`), reason codes and messages, duplicate detection and the event-time
watermark. Imports :mod:`tunewatch.schema`, :mod:`tunewatch.errors` and :mod:`tunewatch.ingest`.
"""

from tunewatch.validate.custom_rules import RuleSet, load_rules
from tunewatch.validate.reasons import REASON_MESSAGES, describe
from tunewatch.validate.validator import EnterpriseDataValidator, ValidationResult

__all__ = ["REASON_MESSAGES", "EnterpriseDataValidator", "RuleSet", "ValidationResult", "describe", "load_rules"]
