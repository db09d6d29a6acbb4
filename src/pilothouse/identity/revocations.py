"""Revocations reach every process at once: key evictions published on a Redis channel.

Each process caches API keys (:class:`~pilothouse.identity.keys.KeyRing`); without this a key
revoked in one process keeps working in the others until their cache entry expires
(``key_cache_ttl``). With ``redis_url`` set, the process that revokes a key (a server, or the
CLI) publishes the key's hash, and every server listening evicts it when the message arrives.

Pub/sub delivers only to connected subscribers, so a listener that (re)subscribes empties its
whole cache first: whatever it missed while disconnected is reloaded from the database. Redis
being down never fails a revocation: the database has it, and the TTL still bounds the delay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)

#: The channel of key evictions (one per Redis server: pub/sub ignores database numbers).
CHANNEL = "pilothouse:keys:evict"
#: Longest wait between reconnection attempts, in seconds.
MAX_BACKOFF = 5.0


class RevocationFeed:
    """Publishes key evictions, and applies other processes' evictions with ``evict``.

    Messages are ``key:<sha256 of the key>``, ``project:<id>`` or ``*`` (everything); ``evict``
    receives them as text.
    """

    def __init__(self, redis_url: str, evict: Callable[[str], None]) -> None:
        self.redis_url = redis_url
        self.evict = evict
        self._client: redis.Redis | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: set once the listener is subscribed (tests wait for it)
        self.listening = threading.Event()

    def publish(self, message: str) -> None:
        """Tell every listening process to evict; a Redis failure is logged, never raised."""
        try:
            if self._client is None:
                self._client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
            self._client.publish(CHANNEL, message)
        except redis.RedisError as exc:
            log.warning("could not publish key eviction %r to Redis: %s", message, exc)

    def start(self) -> None:
        """Listen in a background thread until :meth:`stop`."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._listen, name="key-revocations", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _listen(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            client = redis.Redis.from_url(self.redis_url, socket_timeout=None)
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(CHANNEL)
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.evict("*")  # evictions published while not subscribed were lost
                        self.listening.set()
                        backoff = 0.1
                    elif message["type"] == "message":
                        data = message["data"]
                        self.evict(data.decode() if isinstance(data, bytes) else str(data))
            except (redis.RedisError, OSError) as exc:
                log.warning("key revocation listener lost Redis (%s); retrying", exc)
            except Exception:
                log.exception("key revocation listener failed; restarting it")
            else:
                return
            finally:
                pubsub.close()
                client.close()
            self.listening.clear()
            self._stopping.wait(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)


__all__ = ["CHANNEL", "RevocationFeed"]
