"""The deployment ledger: the hash-chained, signed, append-only `deployment_events` table that is the K-Cloud
evidence.

`append_events` is how the stream workers and the CLI write it (each append signed by `LedgerSigner`),
`verify_ledger` proves it intact, `head` names what a report was built from, and signed checkpoints,
published outside the database (`kcloud.ledger.publish`), let program managers and auditors hold the
service to it.
"""

from kcloud.ledger.chain import LedgerHead, append_events, canonical_json, head, row_content, row_hash
from kcloud.ledger.keys import LedgerKeyError, LedgerSigner
from kcloud.ledger.publish import signing_key_path, trusted_key
from kcloud.ledger.verify import Break, VerifyResult, verify_ledger

__all__ = [
    "Break",
    "LedgerHead",
    "LedgerKeyError",
    "LedgerSigner",
    "VerifyResult",
    "append_events",
    "canonical_json",
    "head",
    "row_content",
    "row_hash",
    "signing_key_path",
    "trusted_key",
    "verify_ledger",
]
