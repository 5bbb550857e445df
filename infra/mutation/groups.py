"""What `make mutate` mutates, in groups, and which tests each group's mutants are tried with.

mutmut tries a mutant with every selected test that calls the mutated function in the test
process. Every request passes through the approval policy, the models and the HTTP API, so with
one selection for all a surviving mutant there would be tried with most of the suite (minutes
each, on two cores). Each group is tried with the tests written about it instead: the unit tests
of its modules and the service-level ones that drive them over HTTP or events. Not selected
anywhere: the tests that run `vend` in a subprocess (mutmut cannot see which functions a
subprocess calls), the packaging, Terraform and emulator tests, and the long stateful machines.

    python -m infra.mutation.groups      # the group names, for the Makefile
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    mutate: tuple[str, ...]  # mutmut's `only_mutate` globs, as staged (vend_client/ at the top)
    tests: tuple[str, ...]  # its `pytest_add_cli_args_test_selection`


# Service-level files that reach every module of the request's path.
_OVER_HTTP = (
    "tests/test_contract_service.py",
    "tests/test_vend_http.py",
    "tests/test_vend_jwt.py",
    "tests/test_events.py",
)

GROUPS: dict[str, Group] = {
    "policy": Group(
        mutate=("shared/approval.py", "shared/ram_policy/*"),
        tests=(
            "tests/test_approval.py",
            "tests/test_ram_policy.py",
            "tests/test_infra_policies.py",
            "tests/test_caller_input.py",
            *_OVER_HTTP,
        ),
    ),
    "auth": Group(
        mutate=("shared/auth/*",),
        tests=(
            "tests/test_auth_jwt.py",
            "tests/test_auth_ram_proof.py",
            "tests/test_local_bearer.py",
            "tests/test_trickling_jwks.py",
            "tests/test_trickling_sts_proof.py",
            *_OVER_HTTP,
        ),
    ),
    "wire": Group(
        mutate=("vend_client/wire/*",),
        tests=(
            "tests/test_envelope.py",
            "tests/test_arns.py",
            "tests/test_auth_ram_proof.py",
            "tests/test_upstream_transport.py",
            # what the audit makes of a traceparent that is not one (the file's other tests
            # start `vend serve` or the custom runtime as processes)
            "tests/test_logs.py::test_a_traceparent_that_is_not_one_is_ignored_never_refused",
            *_OVER_HTTP,
            "client/tests",
        ),
    ),
    "create": Group(
        mutate=(
            "shared/idempotent_create.py",
            "shared/create_once.py",
            "shared/create_lease.py",
            "shared/idempotency/*",
        ),
        tests=(
            "tests/test_idempotent_create.py",
            "tests/test_idempotency_store.py",
            "tests/test_store_faults.py",
            "tests/test_fault_reproductions.py",
            "tests/test_vend_http.py",
            # redis_store's probes (readiness, doctor) and its password, in the test process.
            "tests/test_ready.py",
            "tests/test_doctor.py",
            "tests/test_store_password.py",
        ),
    ),
    "upstream": Group(
        mutate=("shared/upstream/sts.py", "shared/upstream/retry.py"),
        tests=(
            "tests/test_upstream_retry.py",
            "tests/test_upstream_faults.py",
            "tests/test_upstream_bounded.py",
            "tests/test_sts_sessions.py",
            "tests/test_trickling_sts_proof.py",
            "tests/test_contract_service.py",
            "tests/test_vend_http.py",
        ),
    ),
    "api": Group(
        mutate=("shared/http_api.py", "shared/models.py"),
        tests=(
            "tests/test_fc_http.py",
            "tests/test_caller_input.py",
            "tests/test_fc_invoke.py",
            "tests/test_current.py",
            "tests/test_rotation_http.py",
            *_OVER_HTTP,
        ),
    ),
    "lifecycle": Group(
        mutate=("shared/lifecycle/*",),
        tests=(
            "tests/test_lifecycle_current.py",
            "tests/test_current.py",
            "tests/test_rotation_plan.py",
            "tests/test_rotation_schedule.py",
            "tests/test_rotation_settings.py",
            "tests/test_rotation_observed.py",
            "tests/test_rotation_http.py",
            "tests/test_rotation_matrix.py",
            "tests/test_rotation_callers.py",
            "client/tests/test_rotate.py",
        ),
    ),
    "agent": Group(
        mutate=("vend_client/agent/*",),
        # test_agent.py runs the agent in the test process; its one test of the agent as a
        # process calls nothing mutmut can see, and is never picked for a mutant.
        tests=(
            "client/tests/test_agent.py",
            "client/tests/test_token_cache.py",
            "client/tests/test_token_endpoint.py",
        ),
    ),
}


def main() -> int:
    print(" ".join(GROUPS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
