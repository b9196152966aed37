"""Security: API keys with scopes (stored only as scrypt hashes), rate limiting per key and client address,
data keys from the environment or a 0600 file, AES-256-GCM for personal fields with keyed pseudonyms, and a
tamper-evident audit trail (see docs/security.md)."""

from tunewatch.security.audit import AuditEntry, AuditError, AuditLog
from tunewatch.security.keyring import Keyring, KeyringError
from tunewatch.security.keys import ApiKey, ApiKeyError, ApiKeyStore, Scope, parse_scope
from tunewatch.security.personal_data import DecryptionError, PersonalDataError, PersonalDataProtector
from tunewatch.security.ratelimit import RateLimiter, RateLimitExceeded

__all__ = [
    "ApiKey",
    "ApiKeyError",
    "ApiKeyStore",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "DecryptionError",
    "Keyring",
    "KeyringError",
    "PersonalDataError",
    "PersonalDataProtector",
    "RateLimitExceeded",
    "RateLimiter",
    "Scope",
    "parse_scope",
]
