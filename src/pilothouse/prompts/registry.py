"""The prompt registry: saving versions, moving labels, resolving and rendering prompts.

Resolving ``name@label`` (with everything it includes) is served from an in-process cache so
the gateway renders a warm prompt without touching the database. Every write made through this
process bumps a generation number that empties the cache at once; writes made by other
processes are seen within ``prompts_cache_ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from pilothouse.errors import BadRequest, Conflict, NotFound
from pilothouse.identity.access import Principal
from pilothouse.prompts import model
from pilothouse.prompts.template import Compiled, PromptTemplate, Ref, compile_prompt
from pilothouse.store import Database
from pilothouse.store import prompts as store

#: How deep prompts may include prompts that include prompts.
MAX_INCLUDE_DEPTH = 10


@dataclass(frozen=True)
class Actor:
    """Who made a change: shown as a user's email or ``key:<name>``."""

    display: str
    user_id: int | None = None
    key_id: int | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        if principal.kind == "key":
            return cls(f"key:{principal.name}", key_id=principal.id)
        return cls(principal.name, user_id=principal.id)


@dataclass(frozen=True)
class Resolved:
    """One prompt version, compiled, with every prompt it includes (by reference)."""

    project_id: int
    prompt_id: int
    name: str
    type: str
    version: int
    template_format: str
    template: Any
    config: dict[str, Any]
    compiled: PromptTemplate
    includes: dict[Ref, Compiled] = field(default_factory=dict)
    #: "name@label" -> version it resolved to, for traces and the API
    included_versions: dict[str, int] = field(default_factory=dict)
    #: names of every prompt it includes, directly or not
    reaches: frozenset[str] = frozenset()

    def render(self, variables: Mapping[str, Any]) -> Rendered:
        if self.type == "text":
            text = self.compiled.render_text(variables, self.includes)
            return Rendered(self, text=text, messages=[{"role": "user", "content": text}])
        return Rendered(self, messages=self.compiled.render_messages(variables, self.includes))


@dataclass(frozen=True)
class Rendered:
    prompt: Resolved
    messages: list[dict[str, Any]]
    text: str | None = None


@dataclass(frozen=True)
class Saved:
    prompt: RowMapping
    version: RowMapping
    created: bool
    labels: dict[str, int]


def _check_config(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise BadRequest("config is an object", param="config")
    checks: dict[str, tuple[type | tuple[type, ...], str]] = {
        "model": (str, "a model alias"),
        "temperature": ((int, float), "a number"),
        "top_p": ((int, float), "a number"),
        "max_tokens": (int, "an integer"),
        "tools": (list, "a list of tools"),
        "response_format": (dict, "an object"),
        "stop": ((str, list), "a string or a list of strings"),
    }
    for key, (kind, expected) in checks.items():
        value = config.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise BadRequest(f"config.{key} must be {expected}", param=f"config.{key}")
    return {k: v for k, v in config.items() if v is not None}


class PromptRegistry:
    """Prompts of every project, backed by the database, with a resolve cache."""

    def __init__(self, db: Database, cache_ttl: float = 10.0) -> None:
        self.db = db
        self.cache_ttl = cache_ttl
        self.generation = 0
        self._cache: dict[tuple[int, str, str | None, int | None], tuple[int, float, Resolved]] = {}
        self._lock = threading.Lock()
        #: Called as guard(conn, project_id, prompt_name, label) before a label moves by hand;
        #: a guard raises to refuse (e.g. evaluation-protected labels move only by promotion).
        self.label_guards: list[Callable[[Connection, int, str, str], None]] = []

    def _guard(self, conn: Connection, project_id: int, name: str, label: str) -> None:
        for guard in self.label_guards:
            guard(conn, project_id, name, label)

    def invalidate(self) -> None:
        """Forget every cached resolution (after any write)."""
        with self._lock:
            self.generation += 1
            self._cache.clear()

    # --- resolving ---------------------------------------------------------------------------

    def cached(
        self, project_id: int, name: str, label: str | None = None, version: int | None = None
    ) -> Resolved | None:
        """The cached resolution if it is still fresh, without touching the database."""
        if label is None and version is None:
            label = model.LATEST
        hit = self._cache.get((project_id, name, label, version))
        if hit is not None and hit[0] == self.generation and hit[1] > time.monotonic():
            return hit[2]
        return None

    def resolve(
        self,
        project_id: int,
        name: str,
        label: str | None = None,
        version: int | None = None,
        _chain: tuple[str, ...] = (),
    ) -> Resolved:
        """The version ``label`` (default ``latest``) or ``version`` points to, compiled."""
        if label is not None and version is not None:
            raise BadRequest("give a label or a version, not both", param="version")
        if label is None and version is None:
            label = model.LATEST
        if label is not None:
            model.check_label(label)
        key = (project_id, name, label, version)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] == self.generation and hit[1] > now:
            return hit[2]
        generation = self.generation
        resolved = self._load(project_id, name, label, version, _chain)
        with self._lock:
            if generation == self.generation:
                self._cache[key] = (generation, now + self.cache_ttl, resolved)
        return resolved

    def _load(
        self,
        project_id: int,
        name: str,
        label: str | None,
        version: int | None,
        chain: tuple[str, ...],
    ) -> Resolved:
        model.check_name(name)
        with self.db.read() as conn:
            prompt = store.get_prompt(conn, project_id, name)
            number = version if version is not None else self._label_target(conn, prompt, label)
            row = store.get_version(conn, prompt["id"], number, name)
        compiled = compile_prompt(prompt["type"], row["template"], row["template_format"])
        includes, versions, reaches = self._includes(project_id, compiled.refs, (*chain, name))
        return Resolved(
            project_id=project_id,
            prompt_id=prompt["id"],
            name=name,
            type=prompt["type"],
            version=number,
            template_format=row["template_format"],
            template=row["template"],
            config=dict(row["config"]),
            compiled=compiled,
            includes=includes,
            included_versions=versions,
            reaches=reaches,
        )

    @staticmethod
    def _label_target(conn: Connection, prompt: RowMapping, label: str | None) -> int:
        assert label is not None
        row = store.get_label(conn, prompt["id"], label)
        if row is None:
            raise NotFound(f"label {label!r} not found on prompt {prompt['name']!r}", param="label")
        return int(row["version"])

    def _includes(
        self, project_id: int, refs: Iterable[Ref], chain: tuple[str, ...], *, lenient: bool = False
    ) -> tuple[dict[Ref, Compiled], dict[str, int], frozenset[str]]:
        includes: dict[Ref, Compiled] = {}
        versions: dict[str, int] = {}
        reaches: set[str] = set()
        for ref in refs:
            if ref.name in chain:
                cycle = " -> ".join((*chain, ref.name))
                raise BadRequest(
                    f"prompts include each other in a cycle: {cycle}", code="composition_cycle"
                )
            if len(chain) >= MAX_INCLUDE_DEPTH:
                raise BadRequest(
                    f"prompts include each other more than {MAX_INCLUDE_DEPTH} deep: "
                    + " -> ".join(chain),
                    code="composition_too_deep",
                )
            try:
                child = self.resolve(project_id, ref.name, ref.label, ref.version, chain)
            except NotFound as exc:
                if lenient:
                    continue
                raise NotFound(f"{exc.detail} (included as {ref} by {chain[-1]!r})") from None
            # A cached child was checked against another chain: check what it reaches too.
            loop = next((name for name in chain if name in child.reaches), None)
            if loop is not None:
                direct = loop in {r.name for r in child.compiled.refs}
                cycle = " -> ".join((*chain, ref.name, *(() if direct else ("...",)), loop))
                raise BadRequest(
                    f"prompts include each other in a cycle: {cycle}", code="composition_cycle"
                )
            if child.compiled.text is None:
                raise BadRequest(
                    f"{ref} is a chat prompt: only text prompts can be included",
                    code="invalid_include",
                )
            includes[ref] = child.compiled.text
            includes.update(child.includes)
            versions[str(ref)] = child.version
            versions.update(child.included_versions)
            reaches.add(child.name)
            reaches.update(child.reaches)
        return includes, versions, frozenset(reaches)

    def render(
        self,
        project_id: int,
        name: str,
        variables: Mapping[str, Any],
        label: str | None = None,
        version: int | None = None,
    ) -> Rendered:
        return self.resolve(project_id, name, label, version).render(variables)

    # --- writing -----------------------------------------------------------------------------

    def save(
        self,
        project_id: int,
        name: str,
        *,
        actor: Actor,
        template: Any,
        prompt_type: str | None = None,
        template_format: str = "mustache",
        config: dict[str, Any] | None = None,
        message: str = "",
        labels: Iterable[str] = (),
        description: str | None = None,
        tags: list[str] | None = None,
        create: bool = True,
        must_create: bool = False,
    ) -> Saved:
        """Add a version, unless its content equals the latest one; create the prompt first when
        ``create`` allows it. Moves ``latest`` and ``labels`` to the saved version."""
        model.check_name(name)
        labels = [model.check_label(label, "labels") for label in labels]
        if model.LATEST in labels:
            raise BadRequest("'latest' moves by itself; it cannot be set", param="labels")
        config = _check_config(config or {})
        for param, value in (
            ("template", template),
            ("config", config),
            ("message", message),
            ("description", description),
            ("tags", tags),
        ):
            model.check_text(value, param)
        with self.db.read() as conn:
            existing = store.find_prompt(conn, project_id, name)
        if existing is not None and must_create:
            raise Conflict(f"prompt {name!r} already exists in project {project_id}", param="name")
        if existing is None and not create:
            raise NotFound(f"prompt {name!r} not found in project {project_id}", param="name")
        kind = prompt_type or (existing["type"] if existing is not None else None)
        if kind is None:
            raise BadRequest("a new prompt needs its type: text or chat", param="type")
        if existing is not None and kind != existing["type"]:
            raise BadRequest(
                f"prompt {name!r} is a {existing['type']} prompt; its type cannot change",
                param="type",
            )
        compiled = compile_prompt(kind, template, template_format)
        # Catch cycles through today's labels now; prompts not created yet are not an error.
        self._includes(project_id, compiled.refs, (name,), lenient=True)
        digest = model.content_hash(kind, template_format, template, config)
        with self.db.write() as conn:
            prompt = store.find_prompt(conn, project_id, name)
            if prompt is None:
                prompt = store.create_prompt(conn, project_id, name, kind, description or "", tags)
            elif must_create:
                raise Conflict(
                    f"prompt {name!r} already exists in project {project_id}", param="name"
                )
            prompt = store.get_prompt(conn, project_id, name, lock=True)
            meta: dict[str, Any] = {}
            if description is not None and description != prompt["description"]:
                meta["description"] = description
            if tags is not None and sorted(set(tags)) != prompt["tags"]:
                meta["tags"] = sorted(set(tags))
            if meta:
                store.update_prompt(conn, prompt["id"], **meta)
            latest = store.latest_version(conn, prompt["id"])
            created = latest is None or latest["content_hash"] != digest
            if created:
                latest = store.insert_version(
                    conn,
                    prompt["id"],
                    template_format=template_format,
                    template=template,
                    config=config,
                    content_hash=digest,
                    message=message,
                    author=actor.display,
                    author_user_id=actor.user_id,
                    author_key_id=actor.key_id,
                )
                self._move(conn, prompt["id"], model.LATEST, latest["version"], actor, message)
            assert latest is not None
            for label in labels:
                self._guard(conn, project_id, name, label)
                self._move(conn, prompt["id"], label, latest["version"], actor, message)
            prompt = store.get_prompt(conn, project_id, name)
            moved = store.labels_of(conn, [prompt["id"]])[prompt["id"]]
        self.invalidate()
        return Saved(prompt, latest, created, moved)

    @staticmethod
    def _move(
        conn: Connection, prompt_id: int, label: str, version: int | None, actor: Actor, reason: str
    ) -> int | None:
        return store.move_label(
            conn,
            prompt_id,
            label,
            version,
            actor=actor.display,
            actor_user_id=actor.user_id,
            actor_key_id=actor.key_id,
            reason=reason,
        )

    def move_label(
        self,
        project_id: int,
        name: str,
        label: str,
        version: int,
        *,
        actor: Actor,
        reason: str = "",
        guarded: bool = True,
    ) -> tuple[int | None, int]:
        """Point ``label`` at ``version``; returns (from, to).

        ``guarded=False`` skips the label guards: only for moves that passed their own gate.
        """
        model.check_label(label)
        model.check_text(reason, "reason")
        if label == model.LATEST:
            raise BadRequest("'latest' moves by itself; it cannot be set", param="label")
        with self.db.write() as conn:
            prompt = store.get_prompt(conn, project_id, name, lock=True)
            store.get_version(conn, prompt["id"], version, name)
            if guarded:
                self._guard(conn, project_id, name, label)
            before = self._move(conn, prompt["id"], label, version, actor, reason)
        self.invalidate()
        return before, version

    def rollback(
        self, project_id: int, name: str, label: str, *, actor: Actor, reason: str = ""
    ) -> tuple[int, int]:
        """Point ``label`` back where it was before its last move; returns (from, to)."""
        model.check_label(label)
        with self.db.write() as conn:
            prompt = store.get_prompt(conn, project_id, name, lock=True)
            current = store.get_label(conn, prompt["id"], label)
            if current is None:
                raise NotFound(f"label {label!r} not found on prompt {name!r}", param="label")
            self._guard(conn, project_id, name, label)
            if label == model.LATEST:
                raise BadRequest(
                    "'latest' moves by itself; it cannot be rolled back", param="label"
                )
            last = store.last_move(conn, prompt["id"], label)
            if last is None or last["from_version"] is None:
                raise Conflict(
                    f"label {label!r} of prompt {name!r} has no earlier version to roll back to",
                    param="label",
                )
            target = int(last["from_version"])
            why = reason or f"rollback from version {current['version']}"
            self._move(conn, prompt["id"], label, target, actor, why)
        self.invalidate()
        return int(current["version"]), target

    def remove_label(self, project_id: int, name: str, label: str, *, actor: Actor) -> int:
        model.check_label(label)
        if label == model.LATEST:
            raise BadRequest("'latest' moves by itself; it cannot be removed", param="label")
        with self.db.write() as conn:
            prompt = store.get_prompt(conn, project_id, name, lock=True)
            current = store.get_label(conn, prompt["id"], label)
            if current is None:
                raise NotFound(f"label {label!r} not found on prompt {name!r}", param="label")
            self._guard(conn, project_id, name, label)
            self._move(conn, prompt["id"], label, None, actor, "removed")
        self.invalidate()
        return int(current["version"])

    def update(
        self,
        project_id: int,
        name: str,
        *,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> RowMapping:
        """Change a prompt's description or tags (never its versions)."""
        model.check_text(description, "description")
        model.check_text(tags, "tags")
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags"] = sorted(set(tags))
        with self.db.write() as conn:
            prompt = store.get_prompt(conn, project_id, name, lock=True)
            if values:
                store.update_prompt(conn, prompt["id"], **values)
            row = store.get_prompt(conn, project_id, name)
        self.invalidate()
        return row

    def delete(self, project_id: int, name: str) -> None:
        with self.db.write() as conn:
            prompt = store.get_prompt(conn, project_id, name, lock=True)
            store.delete_prompt(conn, prompt["id"])
        self.invalidate()


__all__ = ["Actor", "PromptRegistry", "Rendered", "Resolved", "Saved"]
