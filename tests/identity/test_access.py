"""Roles grant scopes; keys hold theirs on their project; superusers may do anything."""

from __future__ import annotations

import pytest

from pilothouse.errors import Forbidden
from pilothouse.identity.access import ROLE_SCOPES, ROLES, SCOPES, Principal, user_principal


def test_every_role_maps_to_known_scopes():
    assert set(ROLE_SCOPES) == set(ROLES)
    for scopes in ROLE_SCOPES.values():
        assert scopes <= set(SCOPES)
    assert ROLE_SCOPES["viewer"] == {"read"}
    assert "admin" not in ROLE_SCOPES["member"] and "write" in ROLE_SCOPES["member"]
    assert ROLE_SCOPES["owner"] == ROLE_SCOPES["admin"] == set(SCOPES)


def test_viewer_reads_but_cannot_write():
    viewer = user_principal(7, "v@example.com", False, {1: "viewer"})
    assert viewer.can("read", 1)
    assert not viewer.can("write", 1)
    assert not viewer.can("read", 2)
    with pytest.raises(Forbidden, match="'write' scope on project 1"):
        viewer.require("write", 1)
    assert viewer.visible_projects() == {1}


def test_superuser_may_do_everything():
    root = user_principal(1, "root@example.com", True, {})
    assert root.can("admin", 99)
    assert root.visible_projects() is None
    root.require_superuser()
    root.require_org_admin(5)


def test_non_superuser_is_refused_superuser_work():
    member = user_principal(2, "m@example.com", False, {1: "member"})
    with pytest.raises(Forbidden):
        member.require_superuser()
    with pytest.raises(Forbidden):
        member.require_org_admin(1)


def test_org_admin_key_administers_its_organization_only():
    key = Principal(
        kind="key", id=3, name="k", grants={1: frozenset({"admin"})}, admin_orgs=frozenset({1})
    )
    assert key.can("write", 42, org_id=1)  # any project of its organization
    assert not key.can("write", 42, org_id=2)
    key.require_org_admin(1)
    with pytest.raises(Forbidden):
        key.require_org_admin(2)
