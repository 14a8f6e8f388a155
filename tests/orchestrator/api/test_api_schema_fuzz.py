"""Schemathesis: requests generated from the OpenAPI schema never get a 5xx.

Each operation is fuzzed by Hypothesis inside an ordinary test (so it can use
the real-Redis fixtures); bounded to a few dozen examples per operation so the
whole run stays well under a minute on two cores.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.case import Case
from schemathesis.openapi import from_asgi

from orchestrator.api import create_app
from orchestrator.settings import Settings
from tests.support.api import AUTH

EXAMPLES_PER_OPERATION = 30


def test_generated_requests_never_get_a_server_error(settings: Settings) -> None:
    schema = from_asgi("/openapi.json", create_app(settings))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 9  # every route is in the schema

    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:
            case.call_and_validate(headers=AUTH, checks=[not_a_server_error])

        fuzz()
