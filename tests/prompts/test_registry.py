"""The registry's resolve cache: invalidated by this process's writes, TTL-bound for others."""

from __future__ import annotations

from pilothouse.prompts.registry import Actor, PromptRegistry
from pilothouse.runtime import Runtime

ACTOR = Actor("tester@example.com", user_id=1)


def test_writes_here_apply_at_once_elsewhere_within_the_ttl(runtime: Runtime):
    here = PromptRegistry(runtime.db, cache_ttl=3600)
    there = PromptRegistry(runtime.db, cache_ttl=3600)  # another replica
    uncached = PromptRegistry(runtime.db, cache_ttl=0)
    here.save(1, "p", actor=ACTOR, prompt_type="text", template="one", labels=["production"])
    assert there.resolve(1, "p", "production").version == 1

    saved = here.save(1, "p", actor=ACTOR, template="two", labels=["production"])
    assert saved.created and saved.version["version"] == 2
    assert saved.labels == {"latest": 2, "production": 2}
    assert here.resolve(1, "p", "production").version == 2  # this process: at once
    assert there.resolve(1, "p", "production").version == 1  # another: cached until its TTL
    assert uncached.resolve(1, "p", "production").version == 2
    there.invalidate()
    assert there.resolve(1, "p", "production").version == 2

    assert here.rollback(1, "p", "production", actor=ACTOR) == (2, 1)
    assert here.resolve(1, "p", "production").version == 1
    assert here.cached(1, "p", "production") is not None


def test_identical_content_makes_no_version_but_moves_labels(runtime: Runtime):
    registry = PromptRegistry(runtime.db)
    first = registry.save(1, "q", actor=ACTOR, prompt_type="text", template="same", message="a")
    again = registry.save(1, "q", actor=ACTOR, template="same", labels=["staging"], message="b")
    assert first.created and not again.created
    assert again.version["version"] == 1
    assert again.version["message"] == "a"
    assert again.labels == {"latest": 1, "staging": 1}
    config = registry.save(1, "q", actor=ACTOR, template="same", config={"temperature": 0.5})
    assert config.created and config.version["version"] == 2  # config is content too
