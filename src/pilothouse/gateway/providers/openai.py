"""``openai``: any OpenAI-compatible endpoint (OpenAI, Azure OpenAI v1, vLLM, Ollama, llama.cpp,
Together, Groq, Modal/Baseten serverless). The body passes through untouched apart from
``model``, so provider-specific parameters reach the upstream as sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson

from pilothouse.errors import UpstreamError
from pilothouse.gateway.config import Deployment
from pilothouse.gateway.http import sse_events
from pilothouse.gateway.providers.base import AttemptFailed, Provider, error_message

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(Provider):
    name = "openai"

    def _request(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> tuple[bytes, dict[str, str]]:
        payload = {**deployment.params, **body, "model": deployment.model}
        headers = {"content-type": "application/json", **deployment.headers}
        if deployment.api_key:
            headers["authorization"] = "Bearer " + deployment.api_key
        return orjson.dumps(payload), headers

    def _url(self, deployment: Deployment, path: str) -> str:
        return (deployment.base_url or DEFAULT_BASE_URL) + path

    async def _call(
        self, deployment: Deployment, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        content, headers = self._request(deployment, body)
        reply = await self.upstream.post(
            self._url(deployment, path), content, headers, deployment.timeouts
        )
        if reply.status >= 400:
            raise AttemptFailed.from_status(reply.status, *error_message(reply.content))
        try:
            doc = orjson.loads(reply.content)
        except orjson.JSONDecodeError:
            raise AttemptFailed(UpstreamError("upstream answered with invalid JSON")) from None
        if not isinstance(doc, dict):
            raise AttemptFailed(UpstreamError("upstream answered with a non-object JSON"))
        return doc

    async def _stream(
        self, deployment: Deployment, path: str, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        content, headers = self._request(deployment, body)
        timeouts = deployment.timeouts
        async with self.upstream.stream(
            self._url(deployment, path), content, headers, timeouts
        ) as response:
            if response.status >= 400:
                raw = await response.read()
                raise AttemptFailed.from_status(response.status, *error_message(raw))
            async for data in sse_events(response, timeouts):
                if data == b"[DONE]":
                    return
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise AttemptFailed(
                        UpstreamError("upstream sent an invalid stream event")
                    ) from None
                if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                    message, _ = error_message(data)
                    raise AttemptFailed(UpstreamError(f"upstream stream error: {message}"))
                yield chunk

    # The non-streaming operations hand back _call's coroutine: no coroutine of their own.
    def chat(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        return self._call(deployment, "/chat/completions", body)

    def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        return self._stream(deployment, "/chat/completions", body)

    def embeddings(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        return self._call(deployment, "/embeddings", body)

    def completions(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        return self._call(deployment, "/completions", body)

    def completions_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        return self._stream(deployment, "/completions", body)
