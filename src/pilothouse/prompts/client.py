"""A small synchronous client of ``/api/prompts``, shared by the CLI and the SDK.

Problem+json answers become the matching :mod:`pilothouse.errors` exception (a 404 stays a
:class:`NotFound` naming the prompt, label or version); an unreachable server becomes
:class:`Unavailable`.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

from pilothouse.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PilothouseError,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

DEFAULT_URL = "http://127.0.0.1:4141"
_ERRORS: dict[int, type[PilothouseError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
}


Rows = list[dict[str, Any]]


def _path(name: str) -> str:
    # Slashes stay (the route captures the whole path); anything else odd is escaped.
    return quote(name, safe="/")


class PromptsClient:
    """Calls the prompt registry API of one server with one API key."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        project_id: int | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("PILOTHOUSE_URL") or DEFAULT_URL).rstrip("/")
        key = key or os.environ.get("PILOTHOUSE_API_KEY") or ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.project_id = project_id
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PromptsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """One API call: the decoded JSON, or the matching Pilothouse error."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if self.project_id is not None:
            query["project_id"] = self.project_id
        try:
            response = self.http.request(method, path, params=query, json=json)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise self._error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def _error(response: httpx.Response) -> PilothouseError:
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        detail = str(problem.get("detail") or f"HTTP {response.status_code}")
        cls = _ERRORS.get(response.status_code, Unavailable)
        if response.status_code >= 500:
            detail = f"server error {response.status_code}: {detail}"
        return cls(detail, code=problem.get("code"), errors=problem.get("errors"))

    # --- the registry --------------------------------------------------------------------------

    def list(self, *, search: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        """Every prompt of the project (all pages)."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.request(
                "GET",
                "/api/prompts",
                params={"q": search, "tag": tag, "limit": 500, "cursor": cursor},
            )
            out.extend(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return out

    def get(
        self,
        name: str,
        *,
        label: str | None = None,
        version: int | None = None,
        resolve: bool = False,
    ) -> dict[str, Any]:
        params = {"label": label, "version": version, "resolve": "true" if resolve else None}
        result: dict[str, Any] = self.request("GET", f"/api/prompts/{_path(name)}", params=params)
        return result

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/prompts", json=body)
        return result

    def save_version(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", f"/api/prompts/{_path(name)}/versions", json=body
        )
        return result

    def update(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", f"/api/prompts/{_path(name)}", json=body)
        return result

    def move_label(self, name: str, label: str, version: int, reason: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT",
            f"/api/prompts/{_path(name)}/labels/{quote(label)}",
            json={"version": version, "reason": reason},
        )
        return result

    def rollback(self, name: str, label: str, reason: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST",
            f"/api/prompts/{_path(name)}/labels/{quote(label)}/rollback",
            json={"reason": reason},
        )
        return result

    def history(self, name: str, label: str | None = None) -> Rows:
        page = self.request(
            "GET", f"/api/prompts/{_path(name)}/history", params={"label": label, "limit": 500}
        )
        data: Rows = page["data"]
        return data

    def diff(self, name: str, old: int, new: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "GET", f"/api/prompts/{_path(name)}/diff", params={"from": old, "to": new}
        )
        return result

    def render(
        self,
        name: str,
        variables: dict[str, Any],
        *,
        label: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"variables": variables}
        if label is not None:
            body["label"] = label
        if version is not None:
            body["version"] = version
        result: dict[str, Any] = self.request(
            "POST", f"/api/prompts/{_path(name)}/render", json=body
        )
        return result


__all__ = ["DEFAULT_URL", "PromptsClient"]
