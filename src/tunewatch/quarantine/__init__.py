"""Quarantine: every rejected event kept verbatim, with its reasons — stored, exported, replayed, encrypted at rest
and shown masked, behind one store that the live service, its HTTP API and the CLI share.

Modules, from the top down (no module imports one above it): ``store`` (the one owner: the rows with their
operations, each audited by the store itself, ``audit=``, whatever interface calls them); ``export`` (NDJSON / raw
lines), ``replay`` (back through a validator or pipeline) and ``rekey``, the operations; ``rows`` (the SQLite table
and its queries); ``crypto`` (AES-256-GCM at rest) and ``masking`` (personal fields hidden for display). Imports
``ingest`` (to parse replayed lines), ``security`` (keyring, audit), ``store.sqlite`` and ``schema``.
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
