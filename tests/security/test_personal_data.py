"""AES-256-GCM tokens for personal fields in Polars frames, tamper detection, rotation, pseudonyms."""

from __future__ import annotations

import base64
import logging
import re
import secrets

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunewatch.schema import PERSONAL_FIELDS
from tunewatch.security.keyring import ENV_KEY, Keyring, KeyringError
from tunewatch.security.personal_data import (
    NONCE_BYTES,
    TAG_BYTES,
    DecryptionError,
    PersonalDataError,
    PersonalDataProtector,
)

TOKEN = re.compile(r"v1\.k1\.[A-Za-z0-9_-]+")
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
USERS = ["alice@example.com", "bob", "", "zoë 🎧", "alice@example.com"]
IPS = ["203.0.113.7", None, "2001:db8::1", "10.0.0.1", "203.0.113.7"]


@pytest.fixture
def material() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def ring(material: bytes) -> Keyring:
    return Keyring([("k1", material)])


def rotated_env(old: bytes) -> dict[str, str]:
    """``TUNEWATCH_DATA_KEY`` after a rotation: a new active ``k2`` first, the old ``k1`` kept to read."""
    return {ENV_KEY: f"k2:{base64.b64encode(secrets.token_bytes(32)).decode()},k1:{base64.b64encode(old).decode()}"}


@pytest.fixture
def protector(ring: Keyring) -> PersonalDataProtector:
    return PersonalDataProtector(ring)


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame({"event_id": ["e1", "e2", "e3", "e4", "e5"], "user_id": USERS, "ip_addr": IPS})


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(blob: bytes) -> str:
    return base64.urlsafe_b64encode(blob).decode().rstrip("=")


def test_personal_fields_are_the_schema_ones(protector: PersonalDataProtector) -> None:
    assert set(PERSONAL_FIELDS) == {"user_id", "ip_addr"} and protector.fields == PERSONAL_FIELDS


def test_frame_round_trip(protector: PersonalDataProtector, frame: pl.DataFrame) -> None:
    encrypted = protector.encrypt_frame(frame)
    assert encrypted["event_id"].equals(frame["event_id"]) and encrypted.schema == frame.schema
    assert encrypted["ip_addr"][1] is None  # nulls stay null
    for column in ("user_id", "ip_addr"):
        tokens = encrypted[column].drop_nulls().to_list()
        assert all(TOKEN.fullmatch(t) for t in tokens)
        assert not set(tokens) & set(USERS + IPS)
        assert len(set(tokens)) == len(tokens)  # fresh nonce: equal values give different tokens
    assert protector.decrypt_frame(encrypted).equals(frame)


def test_token_layout_is_nonce_ciphertext_tag(protector: PersonalDataProtector) -> None:
    for value in ("", "x", "zoë 🎧" * 20):
        token = protector.encrypt_value(value, "user_id")
        version, kid, payload = token.split(".")
        assert (version, kid) == ("v1", "k1")
        assert len(b64url_decode(payload)) == NONCE_BYTES + len(value.encode()) + TAG_BYTES
        assert protector.decrypt_value(token, "user_id") == value


def test_every_altered_byte_is_detected(protector: PersonalDataProtector) -> None:
    token = protector.encrypt_value("alice@example.com", "user_id")
    prefix, payload = token.rsplit(".", 1)
    blob = b64url_decode(payload)
    for i in range(len(blob)):  # nonce, ciphertext and tag bytes
        altered = bytearray(blob)
        altered[i] ^= 0x01
        with pytest.raises(DecryptionError, match="user_id: row 0: authentication failed"):
            protector.decrypt_value(f"{prefix}.{b64url_encode(bytes(altered))}", "user_id")
    for i, char in enumerate(token):  # any character of the text, including version and key id
        other = B64URL[(B64URL.index(char) + 1) % 64] if char in B64URL else "x"
        with pytest.raises(DecryptionError):
            protector.decrypt_value(token[:i] + other + token[i + 1 :], "user_id")
    for broken in (token[:-1], token + "A", token + "=", prefix + "." + payload[:20], "v1.k1.", "v1.k1", ""):
        with pytest.raises(DecryptionError):
            protector.decrypt_value(broken, "user_id")


def test_one_bad_token_fails_the_whole_column_without_plaintext(protector: PersonalDataProtector) -> None:
    tokens = protector.encrypt_column(pl.Series("user_id", ["alice", "bob", "carol"]))
    tampered = tokens.scatter(1, tokens[1][:-2] + ("AA" if not tokens[1].endswith("AA") else "BB"))
    with pytest.raises(DecryptionError, match="user_id: row 1: authentication failed") as info:
        protector.decrypt_column(tampered)
    for name in ("alice", "bob", "carol"):
        assert name not in str(info.value)


def test_plaintext_passed_for_decryption_is_refused_without_echo(protector: PersonalDataProtector) -> None:
    column = pl.Series("ip_addr", [protector.encrypt_value("10.0.0.1", "ip_addr"), "203.0.113.7", "a.b.c"])
    with pytest.raises(DecryptionError, match=r"ip_addr: row 1: not a v1 token .* 2 malformed value") as info:
        protector.decrypt_column(column)
    assert "203.0.113.7" not in str(info.value)


def test_token_of_another_field_fails(protector: PersonalDataProtector) -> None:
    token = protector.encrypt_value("203.0.113.7", "ip_addr")
    with pytest.raises(DecryptionError, match=r"user_id: row 0: authentication failed .* another field"):
        protector.decrypt_value(token, "user_id")
    frame = pl.DataFrame({"user_id": [token]})
    with pytest.raises(DecryptionError):
        protector.decrypt_frame(frame)


def test_wrong_key_same_id_fails(protector: PersonalDataProtector) -> None:
    token = protector.encrypt_value("alice", "user_id")
    impostor = PersonalDataProtector(Keyring([("k1", secrets.token_bytes(32))]))
    with pytest.raises(DecryptionError, match="authentication failed with key 'k1'"):
        impostor.decrypt_value(token, "user_id")


def test_relabelled_key_id_fails(material: bytes) -> None:
    both = Keyring([("k2", material), ("k1", secrets.token_bytes(32))])
    token = PersonalDataProtector(both).encrypt_value("alice", "user_id")
    assert token.startswith("v1.k2.")
    with pytest.raises(DecryptionError, match="authentication failed with key 'k1'"):
        PersonalDataProtector(both).decrypt_value(token.replace("v1.k2.", "v1.k1.", 1), "user_id")


def test_unknown_key_id_is_named(protector: PersonalDataProtector) -> None:
    other = PersonalDataProtector(Keyring([("k9", secrets.token_bytes(32))]))
    with pytest.raises(DecryptionError, match=r"user_id: row 0: unknown key id 'k9' \(known: k1\)"):
        protector.decrypt_value(other.encrypt_value("alice", "user_id"), "user_id")


def test_rotation_old_tokens_still_decrypt_new_ones_use_active(
    ring: Keyring, material: bytes, frame: pl.DataFrame
) -> None:
    old_tokens = PersonalDataProtector(ring).encrypt_frame(frame)
    rotated = PersonalDataProtector(Keyring.from_env(rotated_env(material)))
    new_tokens = rotated.encrypt_frame(frame)
    assert all(t.startswith("v1.k2.") for t in new_tokens["user_id"].to_list())
    mixed = pl.concat([old_tokens, new_tokens])
    assert rotated.decrypt_frame(mixed).equals(pl.concat([frame, frame]))
    with pytest.raises(DecryptionError, match="unknown key id 'k2'"):
        PersonalDataProtector(ring).decrypt_frame(new_tokens)


def test_type_checks(protector: PersonalDataProtector) -> None:
    with pytest.raises(PersonalDataError, match="user_id: personal data column must be of type String, got Int64"):
        protector.encrypt_column(pl.Series("user_id", [1, 2]))
    nulls = protector.encrypt_column(pl.Series("ip_addr", [None, None]))
    assert nulls.dtype == pl.String and nulls.null_count() == 2
    assert protector.decrypt_column(nulls).null_count() == 2
    empty = protector.encrypt_column(pl.Series("user_id", [], dtype=pl.String))
    assert empty.len() == 0 and protector.decrypt_column(empty).len() == 0


def test_frame_without_personal_fields_is_unchanged(protector: PersonalDataProtector) -> None:
    frame = pl.DataFrame({"event_id": ["e1"], "market": ["BR"]})
    assert protector.encrypt_frame(frame).equals(frame) and protector.pseudonymise_frame(frame).equals(frame)


def test_pseudonyms_keep_distinct_counts_without_raw_ids(ring: Keyring, frame: pl.DataFrame) -> None:
    protector = PersonalDataProtector(ring)
    users = pl.Series("user_id", [f"u{i % 37}" for i in range(1000)] + [None])
    pseudo = protector.pseudonymise(users)
    assert pseudo.dtype == pl.String and pseudo.null_count() == 1
    assert pseudo.n_unique() == users.n_unique() == 38
    assert (pseudo[:37] == pseudo[37:74]).all()  # deterministic within the column
    assert not set(pseudo.drop_nulls()) & set(users.drop_nulls())
    assert all(re.fullmatch(r"k1\.[A-Za-z0-9_-]{22}", p) for p in pseudo.drop_nulls())
    assert PersonalDataProtector(ring).pseudonymise(users).equals(pseudo)  # stable across instances
    table = protector.pseudonymise_frame(frame)
    assert table["user_id"].n_unique() == frame["user_id"].n_unique()
    assert table["ip_addr"].null_count() == 1


def test_pseudonyms_depend_on_key_and_field(ring: Keyring) -> None:
    values = pl.Series("user_id", ["alice", "bob"])
    mine = PersonalDataProtector(ring).pseudonymise(values)
    other_key = PersonalDataProtector(Keyring([("k1", secrets.token_bytes(32))])).pseudonymise(values)
    other_field = PersonalDataProtector(ring).pseudonymise(values, field="ip_addr")
    assert not set(mine) & set(other_key) and not set(mine) & set(other_field)


def test_pinned_pseudonym_key_survives_rotation(ring: Keyring, material: bytes) -> None:
    values = pl.Series("user_id", ["alice", "bob"])
    before = PersonalDataProtector(ring).pseudonymise(values)
    rotated = Keyring.from_env(rotated_env(material))
    assert PersonalDataProtector(rotated, pseudonym_kid="k1").pseudonymise(values).equals(before)
    assert not set(PersonalDataProtector(rotated).pseudonymise(values)) & set(before)
    with pytest.raises(KeyringError, match="unknown key id 'k3'"):
        PersonalDataProtector(rotated, pseudonym_kid="k3")


def test_nothing_personal_or_secret_in_logs_or_repr(frame: pl.DataFrame, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    material = base64.b64encode(secrets.token_bytes(32)).decode()
    protector = PersonalDataProtector(Keyring.from_env({ENV_KEY: f"k1:{material}"}))
    encrypted = protector.encrypt_frame(frame)
    protector.decrypt_frame(encrypted)
    protector.pseudonymise_frame(frame)
    with pytest.raises(DecryptionError):
        protector.decrypt_column(frame["user_id"])
    assert "active key id k1" in caplog.text
    shown = caplog.text + repr(protector) + str(protector)
    assert material not in shown and base64.b64decode(material).hex() not in shown
    for value in (*USERS, *IPS):
        if value:
            assert value not in shown


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.text(max_size=200)), max_size=30))
def test_round_trip_of_any_text(values: list[str | None]) -> None:
    protector = PersonalDataProtector(Keyring([("k1", bytes(range(32)))]))
    column = pl.Series("user_id", values, dtype=pl.String)
    tokens = protector.encrypt_column(column)
    assert tokens.null_count() == column.null_count()
    assert protector.decrypt_column(tokens).equals(column)


def test_nonces_are_fresh_per_value(protector: PersonalDataProtector) -> None:
    tokens = protector.encrypt_column(pl.Series("user_id", ["same"] * 5000))
    nonces = {b64url_decode(t.rsplit(".", 1)[1])[:NONCE_BYTES] for t in tokens.to_list()}
    assert len(nonces) == 5000
