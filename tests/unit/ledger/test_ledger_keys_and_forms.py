"""The ledger's keys, signatures and row forms without a database: a key others may read is refused with
how to fix it, concurrent first uses agree on one key, only the trusted key's checkpoints and appends
hold, and the stored form of details is always JSON PostgreSQL can hold."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kcloud.ledger.chain import LedgerRow, row_content, storable
from kcloud.ledger.checkpoint import CheckpointError, sign_checkpoint
from kcloud.ledger.keys import (
    LedgerKeyError,
    LedgerSigner,
    check_append,
    load_or_create_key,
    load_public_keys,
    public_key_text,
    trusted_public_key,
)


def test_a_new_key_is_private_and_its_public_half_is_written_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.pem"
    key, created = load_or_create_key(path)
    assert created and path.stat().st_mode & 0o777 == 0o600
    assert Path(f"{path}.pub").read_text().strip() == public_key_text(key)
    again, created_again = load_or_create_key(path)
    assert not created_again and public_key_text(again) == public_key_text(key)
    trusted = trusted_public_key(None, path)
    assert trusted is not None and trusted.texts == [public_key_text(key)]


def test_concurrent_first_uses_agree_on_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "ledger.pem"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: public_key_text(load_or_create_key(path)[0]), range(16)))
    assert len(set(keys)) == 1 and Path(f"{path}.pub").read_text().strip() == keys[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.pem", "ledger.pem.pub"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_a_key_readable_by_group_or_others_is_refused_with_how_to_fix_it(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "ledger.pem"
    load_or_create_key(path)
    os.chmod(path, mode)
    with pytest.raises(LedgerKeyError, match=rf"mode {mode:04o}.*chmod 600 {path}"):
        LedgerSigner.from_file(path)


def test_while_a_key_is_replaced_both_public_keys_are_trusted(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pub = tmp_path / "trusted.pub"
    pub.write_text(f"# old key, until 2027-01\n{public_key_text(old)}\n\n{public_key_text(new)}\n")
    trusted = load_public_keys(pub)
    assert trusted.texts == [public_key_text(old), public_key_text(new)]
    sign_checkpoint(old, 1, 1, "ab" * 32).check_signature(trusted)
    sign_checkpoint(new, 2, 2, "cd" * 32).check_signature(trusted)
    assert trusted.check_append("ab" * 32, 1, LedgerSigner(old).sign_append("ab" * 32, 1))
    with pytest.raises(CheckpointError, match="signed by another key"):
        sign_checkpoint(Ed25519PrivateKey.generate(), 1, 1, "ab" * 32).check_signature(trusted)
    (tmp_path / "empty.pub").write_text("# nothing\n")
    with pytest.raises(LedgerKeyError, match="holds no public key"):
        load_public_keys(tmp_path / "empty.pub")


def test_an_append_signature_holds_only_for_its_hash_count_and_key(tmp_path: Path) -> None:
    signer = LedgerSigner.from_file(tmp_path / "k.pem")
    sig = signer.sign_append("ab" * 32, 3)
    public = signer.key.public_key()
    assert check_append(public, "ab" * 32, 3, sig)
    assert not check_append(public, "ab" * 32, 2, sig)
    assert not check_append(public, "cd" * 32, 3, sig)
    assert not check_append(Ed25519PrivateKey.generate().public_key(), "ab" * 32, 3, sig)
    assert not check_append(public, "ab" * 32, 3, "not base64!")


def test_a_checkpoint_is_accepted_only_under_the_trusted_key() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    cp = sign_checkpoint(ours, 5, 5, "ab" * 32)
    cp.check_signature(ours.public_key())
    forged = sign_checkpoint(theirs, 9, 9, "cd" * 32)
    with pytest.raises(CheckpointError, match="signed by another key"):
        forged.check_signature(ours.public_key())
    # the trusted key's name written into a forged file does not make it hold
    relabelled = type(forged)(**{**forged.__dict__, "public_key": public_key_text(ours)})
    with pytest.raises(CheckpointError, match="does not match its content"):
        relabelled.check_signature(ours.public_key())


_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(details=st.dictionaries(st.text(), _ANY, max_size=4))
def test_stored_details_are_finite_json_without_nul_or_lone_surrogates(details: dict[str, object]) -> None:
    stored = storable(details)
    row = LedgerRow("d", "idle", datetime(2026, 1, 1, tzinfo=UTC), "n", "s", stored, 7)
    text = row_content(row)  # raises for NaN or infinities
    text.encode("utf-8")  # raises for a lone surrogate
    assert "\x00" not in text and "\\u0000" not in text
    body = json.loads(text)
    assert body["device_id"] == 7 and body["form"] == 2


def test_non_finite_numbers_are_stored_as_null() -> None:
    assert storable({"a": math.inf, "b": -math.inf, "c": math.nan, "d": -0.0}) == {
        "a": None,
        "b": None,
        "c": None,
        "d": -0.0,
    }
