"""ASGI middleware that refuses request bodies above ``max_body_bytes``."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pilothouse.errors import PayloadTooLarge


class BodyLimit:
    """Raise :class:`PayloadTooLarge` from ``receive`` once a body passes the limit.

    The exception reaches the handler of whichever app reads the body, so each protocol
    answers in its own error format.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
                break
        limit = self.max_bytes
        if declared.isdigit() and int(declared) > limit:

            async def refuse() -> Message:
                raise self.too_big()

            await self.app(scope, refuse, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise self.too_big()
            return message

        await self.app(scope, counted, send)

    def too_big(self) -> PayloadTooLarge:
        return too_large(self.max_bytes)


def too_large(max_bytes: int) -> PayloadTooLarge:
    """The error of a request body over ``max_bytes`` (here and on the server's short road)."""
    return PayloadTooLarge(f"request body exceeds the {max_bytes}-byte limit", param="body")
