"""Quarantine: every rejected event kept verbatim, with its reasons — stored, exported, replayed, encrypted at rest
and shown masked, behind one store that the live service, its HTTP API and the CLI share.

Modules: ``store`` (the SQLite table and queries; the one owner), ``export`` (NDJSON / raw lines), ``replay``
(back through a validator or pipeline), ``rekey`` and ``crypto`` (AES-256-GCM at rest), ``masking`` (personal
fields hidden for display). Operations are audited by the store itself (``audit=``), whatever interface calls
them. Imports ``ingest`` (to parse replayed lines), ``security`` (keyring, audit), ``store.sqlite`` and ``schema``.
"""

from tunewatch.quarantine.crypto import RawDecryptionError, configured_keyring
from tunewatch.quarantine.masking import display_raw
from tunewatch.quarantine.rekey import RekeyReport
from tunewatch.quarantine.replay import Ingests, ReplayReport, Validates
from tunewatch.quarantine.store import QuarantinedEvent, QuarantineError, QuarantineStore, State

__all__ = [
    "Ingests",
    "QuarantineError",
    "QuarantineStore",
    "QuarantinedEvent",
    "RawDecryptionError",
    "RekeyReport",
    "ReplayReport",
    "State",
    "Validates",
    "configured_keyring",
    "display_raw",
]
