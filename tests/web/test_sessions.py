"""Session cookies, CSRF tokens, the login limiter and the secret key (web/sessions.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pilothouse.errors import Forbidden, RateLimited
from pilothouse.settings import load_settings
from pilothouse.web.sessions import LoginLimiter, Session, SessionCodec, load_secret_key


def test_cookie_round_trip_and_tampering() -> None:
    codec = SessionCodec("k" * 32, max_age=3600)
    session = Session()
    session.log_in(7, "fp")
    cookie = codec.dump(session)
    again = codec.load(cookie)
    assert again.user_id == 7
    assert again.csrf_token == session.csrf_token
    assert codec.load(cookie[:-2] + "xx").user_id is None
    assert SessionCodec("other" * 8, 3600).load(cookie).user_id is None
    assert codec.load("garbage").user_id is None


def test_csrf_check() -> None:
    session = Session()
    token = session.csrf_token
    session.check_csrf(token)
    for sent in (None, "", token + "x"):
        with pytest.raises(Forbidden):
            session.check_csrf(sent)


def test_log_in_rotates_the_csrf_token() -> None:
    session = Session()
    before = session.csrf_token
    session.log_in(1, "fp")
    assert session.csrf_token != before


def test_flashes_are_shown_once() -> None:
    session = Session()
    session.flash("saved")
    assert session.pop_flashes() == [("ok", "saved")]
    assert session.pop_flashes() == []


def test_limiter_counts_per_client_and_email() -> None:
    limiter = LoginLimiter(2, window=60)
    limiter.hit("1.2.3.4", "A@x")
    limiter.hit("1.2.3.4", "a@x")
    with pytest.raises(RateLimited) as caught:
        limiter.hit("1.2.3.4", "a@x")
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    limiter.hit("5.6.7.8", "a@x")
    limiter.reset("1.2.3.4", "a@x")
    limiter.hit("1.2.3.4", "a@x")


def test_limiter_forgets_after_the_window() -> None:
    limiter = LoginLimiter(1, window=0.0)
    limiter.hit("c", "e")
    limiter.hit("c", "e")


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path / "data"}, environ={})
    first = load_secret_key(settings)
    assert len(first) >= 40
    assert load_secret_key(settings) == first
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "secret_key").st_mode)
    assert mode == 0o600
    explicit = load_settings({"data_dir": tmp_path, "secret_key": "set-by-me"}, environ={})
    assert load_secret_key(explicit) == "set-by-me"
