"""ZeroMQ PUB socket: multipart [topic, json]. Subscribers filter by topic prefix.

Off loopback, alerts travel encrypted and authenticated with CURVE: the server's secret
certificate is required unless the config says `allow_insecure: true`, and a folder of
client public certificates, when given, is the allow list (checked by a ZAP authenticator).
Certificates are zmq's own format (`sentinel keygen` or `zmq.auth.create_certificates`).
"""

from __future__ import annotations

import json
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from sentinel.errors import ConfigError
from sentinel.netaddr import endpoint_is_loopback


class Publisher:
    """Not thread-safe (ZeroMQ sockets never are): only the inference loop publishes."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5556", hwm: int = 10_000,
                 curve_secret: str | Path | None = None, curve_clients: str | Path | None = None,
                 allow_insecure: bool = False) -> None:
        if curve_secret is None and not allow_insecure and not endpoint_is_loopback(endpoint):
            raise ConfigError(
                f"alerts.endpoint {endpoint!r} is not loopback: set alerts.curve_secret_key "
                "(run `sentinel keygen DIR`) or, on a trusted network only, alerts.allow_insecure: true"
            )
        self.endpoint = endpoint
        self._ctx = zmq.Context.instance()
        self._auth: ThreadAuthenticator | None = None
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 500)
        if curve_secret is not None:
            try:
                public, secret = zmq.auth.load_certificate(str(curve_secret))
            except (OSError, ValueError) as e:
                self._sock.close(0)
                raise ConfigError(f"alerts.curve_secret_key {curve_secret}: cannot load ({e})") from None
            if secret is None:
                self._sock.close(0)
                raise ConfigError(f"alerts.curve_secret_key {curve_secret}: holds no secret key; "
                                  "give the .key_secret file")
            if curve_clients is not None:
                self._auth = ThreadAuthenticator(self._ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(curve_clients))
            self._sock.curve_secretkey = secret
            self._sock.curve_publickey = public
            self._sock.curve_server = True
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self.close()
            raise ConfigError(f"alerts.endpoint {endpoint!r}: cannot bind ({e}); pick a free address") from None
        self.dropped = 0

    def publish(self, topic: str, record: dict) -> bool:
        """False when the queue is full (the journal still has it)."""
        try:
            self._sock.send_multipart([topic.encode(), json.dumps(record).encode()], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.dropped += 1
            return False

    def close(self) -> None:
        self._sock.close(linger=500)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def subscribe(endpoint: str, topic: str = "", timeout_ms: int | None = None,
              server_public: str | Path | None = None, client_secret: str | Path | None = None):
    """Yield (topic, record) as they arrive; stops after `timeout_ms` of silence if given."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
    if server_public is not None:
        if client_secret is None:
            sock.close(0)
            raise ConfigError("--server-key needs --client-key (a client certificate with its secret key)")
        sock.curve_serverkey = zmq.auth.load_certificate(str(server_public))[0]
        public, secret = zmq.auth.load_certificate(str(client_secret))
        if secret is None:
            sock.close(0)
            raise ConfigError(f"--client-key {client_secret}: holds no secret key; give the .key_secret file")
        sock.curve_publickey, sock.curve_secretkey = public, secret
    sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
    sock.connect(endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    try:
        while True:
            if not poller.poll(timeout_ms if timeout_ms is not None else 500):
                if timeout_ms is not None:
                    return
                continue
            t, payload = sock.recv_multipart()
            yield t.decode(), json.loads(payload)
    finally:
        sock.close(0)
