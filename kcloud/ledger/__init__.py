"""The deployment ledger: the hash-chained, append-only `deployment_events` table that is the K-Cloud evidence.

`append_events` is how the stream workers and the CLI write it, `verify_ledger` proves it intact, `head`
names what a report was built from, and signed checkpoints let program managers hold the service to it.
"""

from kcloud.ledger.chain import LedgerHead, append_events, canonical_json, head, row_hash
from kcloud.ledger.verify import Break, VerifyResult, verify_ledger

__all__ = [
    "Break",
    "LedgerHead",
    "VerifyResult",
    "append_events",
    "canonical_json",
    "head",
    "row_hash",
    "verify_ledger",
]
