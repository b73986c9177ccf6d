"""With CI=true a test whose peer is missing fails the run; elsewhere it skips."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

MISSING_PEER = '''
import pytest

@pytest.fixture
def broker():
    pytest.skip("mosquitto is not installed")

def test_alerts_reach_the_broker(broker):
    pass
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_peer.py").write_text(MISSING_PEER)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(REPO)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "tests.helpers.no_skip_in_ci", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


def test_a_missing_peer_fails_under_ci(tmp_path):
    proc = _run(tmp_path, "true")
    assert proc.returncode == 1, proc.stdout
    assert "1 error" in proc.stdout and "mosquitto is not installed" in proc.stdout  # a fixture's skip: an error


def test_a_missing_peer_skips_on_a_developer_machine(tmp_path):
    proc = _run(tmp_path, None)
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
