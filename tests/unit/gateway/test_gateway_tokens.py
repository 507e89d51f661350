"""Vendor tokens: the text is `kc_<id>_<secret>`, only a salted hash is kept, and a wrong secret, a
malformed token or an unknown id never matches."""

from __future__ import annotations

import pytest

from gateway.tokens import MalformedToken, hash_secret, issue_token, parse_token, secret_matches


def test_an_issued_token_matches_its_stored_hash_and_nothing_else() -> None:
    issued = issue_token()
    presented = parse_token(issued.text)
    assert presented.token_id == issued.token_id
    assert secret_matches(presented.secret, issued.salt, issued.hash)
    assert not secret_matches(
        presented.secret[:-1] + ("A" if presented.secret[-1] != "A" else "B"), issued.salt, issued.hash
    )
    assert not secret_matches(presented.secret, issued.salt, None), "an unknown id must never match"


def test_the_stored_hash_does_not_contain_the_secret_and_is_salted() -> None:
    first, second = issue_token(), issue_token()
    secret = parse_token(first.text).secret
    assert secret.encode() not in first.hash
    assert first.salt != second.salt
    assert hash_secret(secret, first.salt) != hash_secret(secret, second.salt)


def test_two_tokens_never_share_an_id_or_a_secret() -> None:
    tokens = [issue_token() for _ in range(200)]
    assert len({t.token_id for t in tokens}) == 200
    assert len({t.text for t in tokens}) == 200


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "starts with 'kc_'"),
        ("Bearer kc_0123456789ab_" + "s" * 43, "starts with 'kc_'"),
        ("kc_0123456789ab", "kc_<12 hex digits>_<secret>"),
        ("kc_XYZ_" + "s" * 43, "kc_<12 hex digits>_<secret>"),
        ("kc_0123456789ab_short", "secret of token 0123456789ab"),
        ("kc_0123456789ab_" + "s" * 40 + "!!!", "secret of token 0123456789ab"),
    ],
)
def test_a_malformed_token_is_refused_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(MalformedToken) as err:
        parse_token(text)
    assert says in str(err.value)
