"""ZeroMQ PUB socket: multipart [topic, json]. Subscribers filter by topic prefix."""

from __future__ import annotations

import json

import zmq

from sentinel.errors import ConfigError


class Publisher:
    """Not thread-safe (ZeroMQ sockets never are): only the inference loop publishes."""

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5556", hwm: int = 10_000) -> None:
        self.endpoint = endpoint
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.setsockopt(zmq.LINGER, 500)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as e:
            self._sock.close(0)
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
        self._sock.close()


def subscribe(endpoint: str, topic: str = "", timeout_ms: int | None = None):
    """Yield (topic, record) as they arrive; stops after `timeout_ms` of silence if given."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.SUB)
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
