"""Web UI sessions: signed cookies, CSRF tokens and the login rate limit.

A session is a small dict signed with the server's secret key (itsdangerous) and kept in an
HttpOnly, SameSite=Lax cookie. It holds the user id, a fingerprint of the user's password hash
(so changing the password ends every other session, as Django does), the CSRF token of this
browser and one-shot flash messages. Nothing secret is stored in it; it is signed, not
encrypted. Every POST must echo the CSRF token in a ``csrf_token`` form field.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from pilothouse.errors import Forbidden, RateLimited
from pilothouse.settings import Settings

COOKIE = "pilothouse_session"
SECRET_FILE = "secret_key"


def load_secret_key(settings: Settings) -> str:
    """The ``secret_key`` setting, or the one generated once and kept in the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path: Path = settings.data_dir / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another process (or an earlier start) made it: use theirs
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    # A process racing the creator may read an empty file for an instant: wait for the key.
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty; delete it or set PILOTHOUSE_SECRET_KEY")


@dataclass
class Session:
    """The decoded session cookie of one request."""

    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @property
    def user_id(self) -> int | None:
        uid = self.data.get("uid")
        return uid if isinstance(uid, int) else None

    @property
    def csrf_token(self) -> str:
        token = self.data.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
            self.data["csrf"] = token
            self.changed = True
        return token

    def check_csrf(self, sent: str | None) -> None:
        """Raise Forbidden unless ``sent`` is this session's CSRF token."""
        token = self.data.get("csrf")
        if not (isinstance(token, str) and sent and hmac.compare_digest(token, sent)):
            raise Forbidden(
                "the form's security token is missing or stale; reload the page and try again",
                code="csrf_failed",
            )

    def log_in(self, user_id: int, fingerprint: str) -> None:
        """Start a fresh session for the user (a new CSRF token defeats session fixation)."""
        self.data = {"uid": user_id, "fp": fingerprint, "csrf": secrets.token_urlsafe(24)}
        self.changed = True

    def log_out(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(24)}
        self.changed = True

    def flash(self, message: str, kind: str = "ok") -> None:
        self.data.setdefault("flash", []).append([kind, message])
        self.changed = True

    def pop_flashes(self) -> list[tuple[str, str]]:
        raw = self.data.pop("flash", None)
        if not raw:
            return []
        self.changed = True
        return [(str(kind), str(message)) for kind, message in raw]


class SessionCodec:
    """Signs and verifies session cookies with the server's secret key."""

    def __init__(self, secret_key: str, max_age: int) -> None:
        self.secret_key = secret_key
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(secret_key, salt="pilothouse.web.session")

    def load(self, cookie: str | None) -> Session:
        if not cookie:
            return Session()
        try:
            data, signed_at = self._serializer.loads(
                cookie, max_age=self.max_age, return_timestamp=True
            )
        except BadSignature:  # also SignatureExpired: a stale or forged cookie is no session
            return Session()
        if not isinstance(data, dict):
            return Session()
        # Re-sign once past half its life, so an active user stays signed in.
        age = time.time() - signed_at.timestamp()
        return Session(data, changed=age > self.max_age / 2)

    def dump(self, session: Session) -> str:
        return self._serializer.dumps(session.data)

    def fingerprint(self, password_hash: str) -> str:
        """Ties a session to the password it was opened with."""
        digest = hmac.new(self.secret_key.encode(), password_hash.encode(), hashlib.sha256)
        return digest.hexdigest()[:24]


class LoginLimiter:
    """At most ``attempts`` logins per ``window`` seconds for one (client address, email)."""

    def __init__(self, attempts: int, window: float = 60.0, max_keys: int = 10_000) -> None:
        self.attempts = attempts
        self.window = window
        self.max_keys = max_keys
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, client: str, email: str) -> None:
        """Count one attempt; raise RateLimited when over the limit."""
        now = time.monotonic()
        key = (client, email.strip().lower())
        with self._lock:
            if len(self._seen) >= self.max_keys:
                self._prune(now)
            times = self._seen.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.attempts:
                retry = times[0] + self.window - now
                raise RateLimited(
                    "too many login attempts; wait a minute and try again", retry_after=retry
                )
            times.append(now)

    def reset(self, client: str, email: str) -> None:
        with self._lock:
            self._seen.pop((client, email.strip().lower()), None)

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._seen.items() if not t or t[-1] <= now - self.window]:
            del self._seen[key]
