"""The prompt registry's management API under ``/api/prompts``.

Prompt names contain ``/``, so routes capture them with the ``prompt`` path convertor: any
segments except ``versions``, ``labels``, ``render``, ``diff`` and ``history``, which are
reserved in names. No path is ambiguous: ``PATCH .../versions/1`` is a 405, not an edit of a
prompt named ``.../versions/1``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field
from starlette.convertors import Convertor, register_url_convertor

from pilothouse.api.deps import (
    Caller,
    CursorQ,
    LimitQ,
    Page,
    ProjectQ,
    RuntimeDep,
    Strict,
    decode_cursor,
    encode_cursor,
    int_cursor,
    project_of,
)
from pilothouse.errors import BadRequest, NotFound
from pilothouse.prompts import model
from pilothouse.prompts.registry import Actor, PromptRegistry
from pilothouse.prompts.template import compile_prompt
from pilothouse.runtime import Runtime
from pilothouse.store import prompts as store


class PromptNameConvertor(Convertor[str]):
    """Path segments of a prompt name: never a reserved word, so routes stay unambiguous."""

    regex = (
        r"(?:(?!(?:" + "|".join(sorted(model.RESERVED_SEGMENTS)) + r")(?:/|$))[^/]+)"
        r"(?:/(?!(?:" + "|".join(sorted(model.RESERVED_SEGMENTS)) + r")(?:/|$))[^/]+)*"
    )

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("prompt", PromptNameConvertor())

router = APIRouter(tags=["prompts"])

NameP = Annotated[str, Path(description="Prompt name, e.g. `support/refund-reply`")]
LabelP = Annotated[str, Path(description="Label name, e.g. `production`")]
VersionP = Annotated[int, Path(ge=1, le=2**31 - 1)]
NO_NUL = r"^[^\x00]*$"
LabelName = Annotated[str, Field(pattern=model.LABEL_PATTERN)]
PromptName = Annotated[str, Field(min_length=1, max_length=model.NAME_MAX)]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=50)]


class ModelConfig(BaseModel):
    """What the gateway applies unless the request says otherwise; extra keys pass through."""

    model_config = {"extra": "allow"}

    model: str | None = Field(None, description="Model alias")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    stop: str | list[str] | None = None


Template = Annotated[
    str | list[dict[str, Any]],
    Field(
        description="Text prompts: a string. Chat prompts: a list of {role, content} messages "
        "and {placeholder: name} entries for message lists."
    ),
]
Format = Literal["mustache", "jinja2"]


class VersionCreate(Strict):
    template: Template
    template_format: Format = "mustache"
    config: ModelConfig | None = None
    message: str = Field("", max_length=2000, description="Why this version exists")
    labels: list[LabelName] = Field(default_factory=list, description="Labels to move to it")


class PromptCreate(VersionCreate):
    name: PromptName
    type: Literal["text", "chat"]
    description: str = Field("", max_length=5000)
    tags: Tags = Field(default_factory=list)


class PromptUpdate(Strict):
    description: str | None = Field(None, max_length=5000)
    tags: Tags | None = None


class Version(BaseModel):
    version: int
    template_format: str
    template: Any
    config: dict[str, Any]
    content_hash: str
    message: str
    author: str
    created_at: datetime
    labels: list[str] = Field(default_factory=list)
    variables: list[str] = Field(default_factory=list)


class Prompt(BaseModel):
    id: int
    project_id: int
    name: str
    type: str
    description: str
    tags: list[str]
    labels: dict[str, int] = Field(description="label -> version")
    latest_version: int | None
    created_at: datetime
    updated_at: datetime


class PromptDetail(Prompt):
    version: Version = Field(description="The version asked for (default: `latest`)")
    created: bool | None = Field(None, description="On save: whether a new version was made")
    includes: dict[str, dict[str, Any]] | None = Field(
        None, description="With resolve=true: included prompts, by reference"
    )


class LabelMove(Strict):
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str = Field("", max_length=2000, pattern=NO_NUL)


class Rollback(Strict):
    reason: str = Field("", max_length=2000, pattern=NO_NUL)


class LabelOut(BaseModel):
    name: str
    version: int
    previous_version: int | None
    updated_by: str | None = None
    updated_at: datetime | None = None


class LabelEvent(BaseModel):
    id: int
    label: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str
    created_at: datetime


class ConfigChange(BaseModel):
    path: str
    change: Literal["added", "removed", "changed"]
    from_: Any = Field(None, alias="from")
    to: Any = None


class Diff(BaseModel):
    name: str
    from_version: int
    to_version: int
    identical: bool
    template_diff: str = Field(description="Unified diff of the template")
    config_diff: str = Field(description="Unified diff of the model config (YAML)")
    config_changes: list[ConfigChange]
    template_format: dict[str, str] | None
    unified: str = Field(description="template_diff followed by config_diff")


class RenderRequest(Strict):
    label: LabelName | None = Field(None, description="Default: `latest`")
    version: int | None = Field(None, ge=1, le=2**31 - 1)
    variables: dict[str, Any] = Field(default_factory=dict)


class RenderResult(BaseModel):
    name: str
    version: int
    type: str
    text: str | None = Field(description="Text prompts: the rendered text")
    messages: list[dict[str, Any]] = Field(description="As OpenAI chat messages")
    config: dict[str, Any]
    includes: dict[str, int] = Field(description="Included prompt reference -> version")


def registry_of(runtime: Runtime) -> PromptRegistry:
    """The process's prompt registry (created on first use)."""
    found = runtime.state.get("prompts")
    if found is None:
        found = runtime.state.setdefault(
            "prompts", PromptRegistry(runtime.db, runtime.settings.prompts_cache_ttl)
        )
    assert isinstance(found, PromptRegistry)
    return found


def _version(row: Any, labels: dict[str, int], prompt_type: str) -> dict[str, Any]:
    out = {k: row[k] for k in Version.model_fields if k in row.keys()}  # noqa: SIM118
    out["labels"] = sorted(label for label, v in labels.items() if v == row["version"])
    compiled = compile_prompt(prompt_type, row["template"], row["template_format"])
    out["variables"] = list(compiled.variables)
    return out


def _prompt(row: Any, labels: dict[str, int]) -> dict[str, Any]:
    out = {k: row[k] for k in Prompt.model_fields if k in row.keys()}  # noqa: SIM118
    out["labels"] = labels
    out["latest_version"] = labels.get(model.LATEST)
    return out


def _detail(runtime: Runtime, project_id: int, name: str, version: int) -> dict[str, Any]:
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, project_id, name)
        labels = store.labels_of(conn, [prompt["id"]])[prompt["id"]]
        row = store.get_version(conn, prompt["id"], version, name)
    return {**_prompt(prompt, labels), "version": _version(row, labels, prompt["type"])}


def _check(name: str) -> str:
    return model.check_name(name)


# --- routes: the longest paths first -----------------------------------------------------------


@router.get("/api/prompts/{name:prompt}/versions/{version}", response_model=Version)
def get_version(
    name: NameP, version: VersionP, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Any:
    """One version of a prompt (versions never change)."""
    pid = project_of(runtime, caller, project_id, "read")
    return _detail(runtime, pid, _check(name), version)["version"]


@router.put("/api/prompts/{name:prompt}/labels/{label}", response_model=LabelOut)
def move_label(
    name: NameP,
    label: LabelP,
    body: LabelMove,
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
) -> Any:
    """Point a label at a version (creates the label). Every move is recorded."""
    pid = project_of(runtime, caller, project_id, "write")
    before, after = registry_of(runtime).move_label(
        pid, _check(name), label, body.version, actor=Actor.of(caller), reason=body.reason
    )
    return {"name": label, "version": after, "previous_version": before}


@router.delete("/api/prompts/{name:prompt}/labels/{label}", status_code=204)
def remove_label(
    name: NameP, label: LabelP, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Response:
    """Remove a label (recorded as a move to nothing). ``latest`` cannot be removed."""
    pid = project_of(runtime, caller, project_id, "write")
    registry_of(runtime).remove_label(pid, _check(name), label, actor=Actor.of(caller))
    return Response(status_code=204)


@router.post("/api/prompts/{name:prompt}/labels/{label}/rollback", response_model=LabelOut)
def rollback_label(
    name: NameP,
    label: LabelP,
    runtime: RuntimeDep,
    caller: Caller,
    body: Rollback | None = None,
    project_id: ProjectQ = None,
) -> Any:
    """Point a label back at the version it had before its last move."""
    pid = project_of(runtime, caller, project_id, "write")
    before, after = registry_of(runtime).rollback(
        pid, _check(name), label, actor=Actor.of(caller), reason=body.reason if body else ""
    )
    return {"name": label, "version": after, "previous_version": before}


@router.get("/api/prompts/{name:prompt}/labels", response_model=list[LabelOut])
def list_labels(
    name: NameP, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Any:
    """Labels with their version, previous version and who moved them last."""
    pid = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, pid, _check(name))
        rows = store.label_rows(conn, prompt["id"])
        out = []
        for row in rows:
            last = store.last_move(conn, prompt["id"], row["name"])
            out.append(
                {
                    "name": row["name"],
                    "version": row["version"],
                    "previous_version": last["from_version"] if last else None,
                    "updated_by": row["updated_by"],
                    "updated_at": row["updated_at"],
                }
            )
    return out


@router.get("/api/prompts/{name:prompt}/versions", response_model=Page[Version])
def list_versions(
    name: NameP,
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Any:
    """Versions, newest first."""
    pid = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, pid, _check(name))
        labels = store.labels_of(conn, [prompt["id"]])[prompt["id"]]
        rows, nxt = store.list_versions(conn, prompt["id"], before=int_cursor(cursor), limit=limit)
    data = [_version(r, labels, prompt["type"]) for r in rows]
    return {"data": data, "next_cursor": encode_cursor(nxt)}


@router.post(
    "/api/prompts/{name:prompt}/versions",
    response_model=PromptDetail,
    status_code=201,
    responses={200: {"description": "Identical to the latest version: nothing was created"}},
)
def create_version(
    name: NameP,
    body: VersionCreate,
    runtime: RuntimeDep,
    caller: Caller,
    response: Response,
    project_id: ProjectQ = None,
) -> Any:
    """Save a new version; content identical to the latest version makes none (200)."""
    pid = project_of(runtime, caller, project_id, "write")
    saved = registry_of(runtime).save(
        pid,
        _check(name),
        actor=Actor.of(caller),
        template=body.template,
        template_format=body.template_format,
        config=body.config.model_dump(exclude_none=True) if body.config else {},
        message=body.message,
        labels=body.labels,
        create=False,
    )
    response.status_code = 201 if saved.created else 200
    return {**_detail(runtime, pid, name, saved.version["version"]), "created": saved.created}


@router.get("/api/prompts/{name:prompt}/history", response_model=Page[LabelEvent])
def label_history(
    name: NameP,
    runtime: RuntimeDep,
    caller: Caller,
    label: Annotated[str | None, Query(pattern=model.LABEL_PATTERN)] = None,
    project_id: ProjectQ = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Any:
    """Every label move (who, when, from, to), newest first."""
    pid = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, pid, _check(name))
        rows, nxt = store.label_events(
            conn, prompt["id"], label=label, before=int_cursor(cursor), limit=limit
        )
    return {"data": [dict(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.get("/api/prompts/{name:prompt}/diff", response_model=Diff)
def diff(
    name: NameP,
    runtime: RuntimeDep,
    caller: Caller,
    from_: Annotated[int, Query(alias="from", ge=1, le=2**31 - 1)],
    to: Annotated[int, Query(ge=1, le=2**31 - 1)],
    project_id: ProjectQ = None,
) -> Any:
    """What changed between two versions: unified diffs of template and config."""
    pid = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, pid, _check(name))
        old = store.get_version(conn, prompt["id"], from_, name)
        new = store.get_version(conn, prompt["id"], to, name)
    return model.diff_versions(name, dict(old), dict(new))


@router.post("/api/prompts/{name:prompt}/render", response_model=RenderResult)
def render(
    name: NameP,
    body: RenderRequest,
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
) -> Any:
    """Render a version (by label, default ``latest``, or number) with variables."""
    pid = project_of(runtime, caller, project_id, "read")
    resolved = registry_of(runtime).resolve(pid, _check(name), body.label, body.version)
    rendered = resolved.render(body.variables)
    return {
        "name": resolved.name,
        "version": resolved.version,
        "type": resolved.type,
        "text": rendered.text,
        "messages": rendered.messages,
        "config": resolved.config,
        "includes": resolved.included_versions,
    }


@router.get("/api/prompts", response_model=Page[Prompt])
def list_prompts(
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
    q: Annotated[
        str | None,
        Query(max_length=200, pattern=NO_NUL, description="Text in name or description"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Any:
    """Prompts of a project, by name."""
    pid = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        rows, nxt = store.list_prompts(
            conn, pid, search=q, tag=tag, after=decode_cursor(cursor), limit=limit
        )
        labels = store.labels_of(conn, [r["id"] for r in rows])
    data = [_prompt(r, labels[r["id"]]) for r in rows]
    return {"data": data, "next_cursor": encode_cursor(nxt)}


@router.post("/api/prompts", response_model=PromptDetail, status_code=201)
def create_prompt(
    body: PromptCreate, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Any:
    """Create a prompt with its first version (409 if the name is taken)."""
    pid = project_of(runtime, caller, project_id, "write")
    saved = registry_of(runtime).save(
        pid,
        body.name,
        actor=Actor.of(caller),
        prompt_type=body.type,
        template=body.template,
        template_format=body.template_format,
        config=body.config.model_dump(exclude_none=True) if body.config else {},
        message=body.message,
        labels=body.labels,
        description=body.description,
        tags=body.tags,
        must_create=True,
    )
    return {**_detail(runtime, pid, body.name, saved.version["version"]), "created": True}


@router.get("/api/prompts/{name:prompt}", response_model=PromptDetail)
def get_prompt(
    name: NameP,
    runtime: RuntimeDep,
    caller: Caller,
    label: Annotated[
        str | None, Query(pattern=model.LABEL_PATTERN, description="Default: `latest`")
    ] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    resolve: Annotated[bool, Query(description="Include the prompts it includes")] = False,
    project_id: ProjectQ = None,
) -> Any:
    """A prompt with one version: by label (default ``latest``) or by number."""
    pid = project_of(runtime, caller, project_id, "read")
    if label is not None and version is not None:
        raise BadRequest("give a label or a version, not both", param="version")
    if resolve:
        resolved = registry_of(runtime).resolve(pid, _check(name), label, version)
        out = _detail(runtime, pid, name, resolved.version)
        out["includes"] = {
            str(ref): {"template": c.source, "template_format": c.format}
            for ref, c in resolved.includes.items()
        }
        return out
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, pid, _check(name))
        if version is None:
            label = label or model.LATEST
            row = store.get_label(conn, prompt["id"], label)
            if row is None:
                raise NotFound(f"label {label!r} not found on prompt {name!r}", param="label")
            version = int(row["version"])
    return _detail(runtime, pid, name, version)


@router.patch("/api/prompts/{name:prompt}", response_model=Prompt)
def update_prompt(
    name: NameP,
    body: PromptUpdate,
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
) -> Any:
    """Change description or tags. Versions cannot be edited: save a new one."""
    pid = project_of(runtime, caller, project_id, "write")
    row = registry_of(runtime).update(
        pid, _check(name), description=body.description, tags=body.tags
    )
    with runtime.db.read() as conn:
        labels = store.labels_of(conn, [row["id"]])[row["id"]]
    return _prompt(row, labels)


@router.delete("/api/prompts/{name:prompt}", status_code=204)
def delete_prompt(
    name: NameP, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Response:
    """Delete a prompt with all its versions, labels and history (``admin`` scope)."""
    pid = project_of(runtime, caller, project_id, "admin")
    registry_of(runtime).delete(pid, _check(name))
    return Response(status_code=204)
