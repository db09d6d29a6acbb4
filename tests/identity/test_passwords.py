"""Passwords are hashed with Argon2id and never stored in plaintext."""

from __future__ import annotations

import sqlalchemy as sa

from pilothouse.identity.passwords import generate_password, hash_password, verify_password
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.conftest import ADMIN_PASSWORD


def test_argon2id_round_trip():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse")
    assert not verify_password(hashed, "wrong horse")
    assert not verify_password("not-a-hash", "correct horse")


def test_generated_passwords_are_long_and_distinct():
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(len(p) >= 20 for p in passwords)


def test_database_holds_no_plaintext_password(runtime: Runtime):
    with runtime.db.read() as conn:
        rows = list(conn.execute(sa.select(store.users)).mappings())
    assert rows and rows[0]["password_hash"].startswith("$argon2id$")
    assert not any(ADMIN_PASSWORD in str(value) for row in rows for value in row.values())
