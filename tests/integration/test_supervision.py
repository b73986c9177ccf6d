"""Supervision in-process: a source thread or the inference loop that dies is restarted and the
daemon keeps scoring. Faults are injected into the real running objects."""

import threading
import time

from sentinel.config import load_config
from sentinel.service.daemon import Daemon
from sentinel.service.supervisor import RestartPolicy
from tests.integration.test_daemon import write_config


def _wait(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_dead_source_and_dead_loop_are_restarted(tiny_bundle, machine_data, tmp_path):
    src = {"name": "a", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav"), "realtime": True,
           "loop": True}
    config, _ = write_config(tmp_path, tiny_bundle, [src])
    cfg = load_config(config)
    daemon = Daemon(cfg, config)
    daemon.pipeline_policy.first_delay = daemon.pipeline_policy.delay = 0.1  # keep the test short
    result = {}
    runner = threading.Thread(target=lambda: result.update(rc=daemon.run()))
    runner.start()
    try:
        assert _wait(lambda: daemon.pipeline is not None and daemon.pipeline.batches > 2)

        # The inference loop dies: a new one takes over where it stopped.
        first = daemon.pipeline

        def boom(limit):
            raise RuntimeError("injected fault")

        first._ready = boom
        assert _wait(lambda: daemon.pipeline is not first and daemon.pipeline.is_alive())
        scored = sum(t.windows_scored for t in daemon.pipeline.tracks)
        assert _wait(lambda: sum(t.windows_scored for t in daemon.pipeline.tracks) > scored + 2)

        # The source thread dies: a fresh one is started and scoring resumes.
        _, old_src = daemon.sources["a"]

        def broken(samples):
            raise OSError("injected device error")

        old_src.emit = broken
        assert _wait(lambda: daemon.sources["a"][1] is not old_src, timeout=10)
        new_src = daemon.sources["a"][1]
        assert _wait(lambda: any(t.source is new_src and t.windows_scored > 0 for t in daemon.pipeline.tracks))
    finally:
        daemon.stop_requested.set()
        runner.join(timeout=10)
    assert result.get("rc") == 0


def test_a_flaky_source_that_recovers_gets_its_short_restart_delay_back(tiny_bundle, machine_data, tmp_path):
    src = {"name": "a", "kind": "file", "path": str(machine_data["test"] / "normal_0.wav"), "realtime": True,
           "loop": True}
    config, _ = write_config(tmp_path, tiny_bundle, [src])
    daemon = Daemon(load_config(config), config)
    daemon.healthy_after_s = 1.5  # the service's is 60 s; the rule is the same
    policy = daemon.source_policies["a"] = RestartPolicy(first_delay=0.1)
    runner = threading.Thread(target=daemon.run)
    runner.start()

    def kill_source():
        _, old = daemon.sources["a"]

        def broken(samples):
            raise OSError("injected device error")

        old.emit = broken
        assert _wait(lambda: daemon.sources["a"][1] is not old, timeout=10)

    try:
        assert _wait(lambda: daemon.pipeline is not None and daemon.pipeline.batches > 2)
        for _ in range(3):  # dies three times in a row: each restart waits twice as long as the last
            kill_source()
        assert policy.delay == 0.8
        # It then runs well for longer than healthy_after_s: its next death waits the short delay again.
        assert _wait(lambda: policy.delay == 0.1, timeout=10), f"restart delay stayed at {policy.delay} s"
        kill_source()
        assert policy.delay == 0.2
    finally:
        daemon.stop_requested.set()
        runner.join(timeout=10)
