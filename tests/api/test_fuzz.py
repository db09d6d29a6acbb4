"""Fuzz the management API from its own OpenAPI document: no 5xx, responses as documented.

Every operation of ``/api/openapi.json`` (including routes plugins add) gets a bounded number
of generated requests (deterministic), sent with the admin key; schemathesis checks each
response: not a server error, status code, content type and body as documented.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.core.result import Ok

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from tests.conftest import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
EXAMPLES_PER_OPERATION = 25

#: What must hold for every response. Not positive_data_acceptance: opaque inputs such as
#: cursors are strings in the schema, and a string this API never issued is rightly a 400.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


def test_management_api_from_its_openapi_document(runtime: Runtime) -> None:
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", create_app(runtime))
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"the document is invalid: {result.err()}")
            continue
        operation = result.ok()
        operations += 1

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            fuzz()
        except Exception as exc:  # noqa: BLE001 - every operation's failure is reported below
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    assert operations >= 10
    assert not failures, "\n\n".join(failures)
