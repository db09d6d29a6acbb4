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
        declared = dict(scope["headers"]).get(b"content-length", b"")
        limit = self.max_bytes
        too_big = PayloadTooLarge(f"request body exceeds the {limit}-byte limit", param="body")
        if declared.isdigit() and int(declared) > limit:

            async def refuse() -> Message:
                raise too_big

            await self.app(scope, refuse, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise too_big
            return message

        await self.app(scope, counted, send)
