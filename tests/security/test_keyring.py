"""Data keyring: keys from the environment or a private key file, key ids, rotation, nothing secret shown."""

from __future__ import annotations

import base64
import logging
import os
import pickle
import secrets
from pathlib import Path

import pytest

from tunewatch.security.keyring import ENV_KEY, ENV_KEY_FILE, Keyring, KeyringError, fingerprint_kid, new_entry


def b64(material: bytes) -> str:
    return base64.b64encode(material).decode()


@pytest.fixture
def k1() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def k2() -> bytes:
    return secrets.token_bytes(32)


def write_key_file(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_single_bare_key_from_env_gets_a_fingerprint_kid(k1: bytes) -> None:
    ring = Keyring.from_env({ENV_KEY: b64(k1)})
    assert ring.kids == (fingerprint_kid(k1),) and ring.active == fingerprint_kid(k1)
    assert ring.active.startswith("k") and len(ring.active) == 9
    assert Keyring.from_env({ENV_KEY: b64(k1)}).active == ring.active  # stable across restarts


def test_several_keys_first_is_active_and_all_decrypt(k1: bytes, k2: bytes) -> None:
    ring = Keyring.from_env({ENV_KEY: f"k2:{b64(k2)}, k1:{b64(k1)}"})
    assert ring.active == "k2" and ring.kids == ("k2", "k1")
    assert "k1" in ring and "k3" not in ring
    nonce = bytes(12)
    token = Keyring([("k1", k1)]).aead("k1").encrypt(nonce, b"hello", None)
    assert ring.aead("k1").decrypt(nonce, token, None) == b"hello"


def test_url_safe_unpadded_base64_is_accepted(k1: bytes) -> None:
    text = base64.urlsafe_b64encode(k1).decode().rstrip("=")
    assert Keyring.from_env({ENV_KEY: f"main:{text}"}).derive("x") == Keyring([("main", k1)]).derive("x")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("k1:not*base64!", "entry 1 (key id 'k1'): not valid base64"),
        (f"k1:{b64(bytes(16))}", "decodes to 16 bytes, need 32"),
        ("k1:", "decodes to 0 bytes"),
        (f"k1:{b64(bytes(32))},k1:{b64(bytes(range(32)))}", "key id 'k1' is given twice"),
        (f"bad id:{b64(bytes(32))}", "entry 1: decodes to 2 bytes"),  # white space splits: 'bad', 'id:…'
        (f"{b64(bytes(range(32)))}:k1", "key id is invalid"),  # key and id swapped
    ],
)
def test_malformed_env_keys_are_refused_without_echoing_them(value: str, message: str) -> None:
    with pytest.raises(KeyringError, match="TUNEWATCH_DATA_KEY") as info:
        Keyring.from_env({ENV_KEY: value})
    assert message in str(info.value)
    assert b64(bytes(range(32))) not in str(info.value) and b64(bytes(32)) not in str(info.value)


def test_no_key_or_both_sources_is_a_clear_error(tmp_path: Path, k1: bytes) -> None:
    with pytest.raises(KeyringError, match=f"no data key: set {ENV_KEY} .* or {ENV_KEY_FILE}"):
        Keyring.from_env({})
    with pytest.raises(KeyringError, match="not both"):
        Keyring.from_env({ENV_KEY: b64(k1), ENV_KEY_FILE: str(tmp_path / "k")})


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_key_file_is_loaded(tmp_path: Path, k1: bytes, k2: bytes, mode: int) -> None:
    path = write_key_file(tmp_path / "data.key", f"# rotated 2026-01\nk2:{b64(k2)}\n\nk1:{b64(k1)}  # old\n", mode)
    ring = Keyring.from_env({ENV_KEY_FILE: str(path)})
    assert ring.active == "k2" and ring.kids == ("k2", "k1")
    assert ring.derive("p", "k1") == Keyring([("k1", k1)]).derive("p")


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660, 0o610])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, k1: bytes, mode: int) -> None:
    path = write_key_file(tmp_path / "data.key", b64(k1), mode)
    with pytest.raises(KeyringError) as info:
        Keyring.from_env({ENV_KEY_FILE: str(path)})
    text = str(info.value)
    assert f"mode {mode:04o}" in text and "0600 or stricter" in text and f"chmod 600 {path}" in text


def test_missing_empty_or_odd_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="cannot read it"):
        Keyring.from_file(tmp_path / "absent.key")
    with pytest.raises(KeyringError, match="not a regular file"):
        Keyring.from_file(tmp_path)
    empty = write_key_file(tmp_path / "empty.key", "# nothing yet\n", 0o600)
    with pytest.raises(KeyringError, match="no key found"):
        Keyring.from_file(empty)


def test_repr_str_and_errors_show_key_ids_only(k1: bytes, k2: bytes) -> None:
    ring = Keyring([("k2", k2), ("k1", k1)])
    for shown in (repr(ring), str(ring), f"{ring}", repr([ring])):
        assert shown.startswith(("Keyring(active='k2'", "[Keyring(active='k2'"))
        for material in (k1, k2):
            assert b64(material) not in shown and material.hex() not in shown and repr(material) not in shown
    with pytest.raises(KeyringError, match=r"unknown key id 'k9' \(known: k2, k1\)"):
        ring.aead("k9")


def test_keyring_cannot_be_pickled(k1: bytes) -> None:
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(Keyring([("k1", k1)]))


def test_loading_logs_ids_never_material(tmp_path: Path, k1: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    Keyring.from_env({ENV_KEY: f"k1:{b64(k1)}"})
    path = write_key_file(tmp_path / "data.key", f"k1:{b64(k1)}", 0o600)
    Keyring.from_env({ENV_KEY_FILE: str(path)})
    assert caplog.text.count("active key id k1") == 2
    assert b64(k1) not in caplog.text and k1.hex() not in caplog.text


def test_derived_keys_are_separate_per_purpose_and_key(k1: bytes, k2: bytes) -> None:
    ring = Keyring([("k1", k1), ("k2", k2)])
    subkeys = {ring.derive("audit"), ring.derive("pseudonym"), ring.derive("audit", "k2"), k1, k2}
    assert len(subkeys) == 5
    assert ring.derive("audit") == ring.derive("audit", "k1") == Keyring([("k1", k1)]).derive("audit")


def test_constructor_checks(k1: bytes) -> None:
    with pytest.raises(KeyringError, match="at least one key"):
        Keyring([])
    with pytest.raises(KeyringError, match="need 32 bytes for AES-256, got 31"):
        Keyring([("k1", k1[:31])])
    with pytest.raises(KeyringError, match="active key id 'k2' is not among the keys"):
        Keyring([("k1", k1)], active="k2")
    with pytest.raises(KeyringError, match="key id is invalid"):
        Keyring([("k.1", k1)])
    assert Keyring([("k0", bytes(32)), ("k1", k1)], active="k1").active == "k1"


def test_new_entry_round_trips() -> None:
    entry = new_entry("k7")
    ring = Keyring.from_env({ENV_KEY: entry})
    assert ring.active == "k7" and len(base64.b64decode(entry.split(":", 1)[1])) == 32
    assert Keyring.generate("gen").kids == ("gen",)


def test_key_file_path_from_real_environment(tmp_path: Path, k1: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_key_file(tmp_path / "data.key", f"k1:{b64(k1)}\n", 0o600)
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.setenv(ENV_KEY_FILE, os.fspath(path))
    assert Keyring.from_env().kids == ("k1",)
