"""Under CI=true a skipped test is a failed one: CI installs every peer (.ci/system-deps.sh), so a
skip there means a peer is missing and the suite would pass without testing what it names.
Loaded by tests/conftest.py; on a developer's machine a missing peer still only skips."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ARG001 - pytest's hook signature
    outcome = yield
    rep = outcome.get_result()
    if in_ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped under CI=true, where every peer must be installed ({reason}); run make system-deps"
