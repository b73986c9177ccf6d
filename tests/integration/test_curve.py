"""Alert transport security with real sockets: CURVE keys, an allow list, and the loopback rule."""

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import zmq

from sentinel.alerts.publisher import Publisher
from sentinel.errors import ConfigError
from sentinel.netaddr import endpoint_is_loopback as is_loopback
from tests.conftest import run_cli, sentinel_cmd
from tests.helpers.net import free_port


def _keys(tmp_path, name):
    proc = run_cli("keygen", str(tmp_path / "keys"), "--name", name, check=True)
    return json.loads(proc.stdout)


def _pump(pub, stop):
    i = 0
    while not stop.is_set():
        pub.publish("alert.x", {"kind": "alert", "n": i})
        i += 1
        time.sleep(0.05)


def _listen(endpoint, seconds, **curve):
    sock = zmq.Context.instance().socket(zmq.SUB)
    for k, v in curve.items():
        setattr(sock, k, v)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not got:
        if sock.poll(100):
            got.append(sock.recv_multipart())
    sock.close(0)
    return got


def test_only_allowed_curve_clients_receive(tmp_path):
    server, allowed, stranger = (_keys(tmp_path, n) for n in ("server", "client", "stranger"))
    clients = tmp_path / "clients"
    clients.mkdir()
    (clients / "client.key").write_bytes(Path(allowed["public"]).read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = Publisher(endpoint, curve_secret=server["secret"], curve_clients=clients)
    stop = threading.Event()
    pumper = threading.Thread(target=_pump, args=(pub, stop))
    pumper.start()
    try:
        server_pub = zmq.auth.load_certificate(server["public"])[0]
        plain = _listen(endpoint, 2)
        assert plain == [], "a subscriber without CURVE received alerts"
        s_pub, s_sec = zmq.auth.load_certificate(stranger["secret"])
        assert _listen(endpoint, 2, curve_serverkey=server_pub, curve_publickey=s_pub, curve_secretkey=s_sec) == []
        proc = subprocess.run(  # the real CLI with the allowed client's keys
            [*sentinel_cmd(), "subscribe", "--endpoint", endpoint, "--count", "1",
             "--timeout", "20", "--server-key", server["public"], "--client-key", allowed["secret"]],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[0])["topic"] == "alert.x"
    finally:
        stop.set()
        pumper.join()
        pub.close()


def test_non_loopback_needs_keys_or_explicit_insecure():
    with pytest.raises(ConfigError, match="not loopback.*curve_secret_key"):
        Publisher("tcp://0.0.0.0:5999")
    assert is_loopback("tcp://127.0.0.1:5556") and is_loopback("tcp://[::1]:5556") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://0.0.0.0:5556") and not is_loopback("tcp://eth0:5556")
