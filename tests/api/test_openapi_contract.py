"""The OpenAPI document is the contract: schemathesis fuzzes every operation in-process.

Every operation gets up to `EXAMPLES` schema-conforming cases, checked against every response
check, and as many that break the schema, which must not answer a server error; all sent
with an admin key. Then the document's links (log an incident, then act on it; create a
policy, then edit it) are followed as a state machine. The figures are printed in every run.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.stateful import run_state_machine_as_test
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from application.access import Role

EXAMPLES = 12  # per operation and mode: about thirty seconds on one core
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _run(operation, headers: dict[str, str], mode: GenerationMode, tally: Counter) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case) -> None:
        tally["examples"] += 1
        response = case.call(headers=headers)
        tally[f"status {response.status_code // 100}xx"] += 1
        checks = CHECKS if mode is GenerationMode.POSITIVE else [not_a_server_error]
        case.validate_response(response, checks=checks, headers=headers)

    try:
        fuzz()
    except Unsatisfiable:  # nothing to break: an operation without parameters or body
        tally["operations without negative cases"] += 1
    except (Exception, BaseExceptionGroup) as failure:
        tally["failures"] += 1
        raise AssertionError(f"{operation.label} ({mode}): {failure}") from failure


def test_every_operation_keeps_the_contract(container, capsys) -> None:
    app = create_app(container)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {container.keys.create(Role.ADMIN, 'fuzzer')}"}
    tally: Counter[str] = Counter(operations=0, examples=0, failures=0)
    failures: list[str] = []
    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        tally["operations"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, headers, mode, tally)
            except AssertionError as failure:
                failures.append(str(failure)[:2000])
    elapsed = time.perf_counter() - started
    with capsys.disabled():  # the figures belong in every run's log
        print(f"\nschemathesis {schemathesis.__version__}: {dict(tally)} in {elapsed:.1f} s")
    assert not failures, "\n\n".join(failures)


def test_linked_operations_keep_the_contract(container, capsys, monkeypatch) -> None:
    """Stateful: the document's links (create, then read and act on what was created).

    The read models are caught up by hand after each call, never by the background feed the
    app's lifespan would start: what a step can link to (an incident's SLA clocks, say) must
    not depend on a thread's timing (nor on the SLA scheduler's), or hypothesis cannot replay
    a scenario step by step."""
    monkeypatch.setattr(container.feed, "start", lambda *args, **kwargs: None)
    monkeypatch.setattr(container.settings, "sla_scheduler_embedded", False)
    app = create_app(container)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {container.keys.create(Role.ADMIN, 'fuzzer')}"}
    assert _has_links(schema), "the document declares no links to follow"
    # The register's list, the audit trail (the proofs' event ids), grow with
    # every scenario: links drawn from them would make a scenario's steps depend on the
    # ones before (hypothesis calls that flaky).
    growing = schema.exclude(path_regex="^/v1/(improvements|audit/events)$", method="GET")
    machine = growing.exclude(path_regex="/proof$").as_state_machine()

    calls: Counter[str] = Counter()

    class Linked(machine):  # type: ignore[misc,valid-type]
        def setup(self) -> None:
            """A fresh admin key per scenario: one may rotate or revoke the key it used."""
            secret = container.keys.create(Role.ADMIN, f"fuzzer-{uuid.uuid4()}")
            headers["Authorization"] = f"Bearer {secret}"

        def get_call_kwargs(self, case):
            calls[f"{case.method} {case.path}"] += 1
            return {"headers": headers}

        def validate_response(self, response, case, additional_checks=(), **kwargs):
            calls[f"status {response.status_code}"] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
            container.feed.catch_up()

    run_state_machine_as_test(
        Linked,
        settings=settings(
            max_examples=60,
            stateful_step_count=6,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    with capsys.disabled():
        print(
            f"\nstateful: {sum(n for k, n in calls.items() if not k.startswith('status'))} calls,"
            f" {dict(calls)}"
        )


def _has_links(schema) -> bool:
    paths = schema.raw_schema.get("paths", {})
    return any(
        "links" in response
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict)
        for response in operation.get("responses", {}).values()
    )
