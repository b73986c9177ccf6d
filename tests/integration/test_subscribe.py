"""`sentinel subscribe` against a real publisher: topic filtering and one JSON line per message."""

import json
import subprocess
import time

from sentinel.alerts.publisher import Publisher
from tests.conftest import sentinel_cmd
from tests.helpers.net import free_port


def test_subscribe_prints_matching_topics_only():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = Publisher(endpoint)
    proc = subprocess.Popen([*sentinel_cmd(), "subscribe", "--endpoint", endpoint, "--topic", "alert.",
                             "--count", "2", "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        i = 0
        while proc.poll() is None and time.monotonic() < deadline:  # PUB/SUB joins late: keep sending
            pub.publish("status.a", {"kind": "status", "n": i})
            pub.publish("alert.a", {"kind": "alert", "n": i})
            i += 1
            time.sleep(0.05)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        pub.close()
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 2
    assert all(x["topic"] == "alert.a" and x["kind"] == "alert" for x in lines)
