"""The exception tree: one status and a stable code per class."""

from __future__ import annotations

import pilothouse.errors as errors
from pilothouse.errors import PilothouseError


def _classes() -> list[type[PilothouseError]]:
    return [getattr(errors, name) for name in errors.__all__]


def test_every_error_is_in_the_tree_with_a_distinct_code():
    classes = _classes()
    assert all(issubclass(cls, PilothouseError) for cls in classes)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))
    for cls in classes:
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the drawn tree"


def test_statuses():
    assert errors.BadRequest.status == 400
    assert errors.ValidationFailed.status == 422
    assert errors.PayloadTooLarge.status == 413
    assert errors.Unauthorized.status == 401 and errors.Forbidden.status == 403
    assert errors.NotFound.status == 404 and errors.Conflict.status == 409
    assert errors.RateLimited.status == errors.BudgetExceeded.status == 429
    assert errors.UpstreamError.status == 502 and errors.UpstreamTimeout.status == 504
    assert errors.Unavailable.status == 503


def test_an_error_carries_detail_code_param_and_errors():
    exc = errors.ValidationFailed(
        "bad", code="custom", param="body.x", errors=[{"path": "body.x", "reason": "no"}]
    )
    assert (str(exc), exc.detail, exc.code, exc.param) == ("bad", "bad", "custom", "body.x")
    assert exc.errors == [{"path": "body.x", "reason": "no"}]
    assert errors.NotFound("x").code == "not_found"  # the class default is untouched
