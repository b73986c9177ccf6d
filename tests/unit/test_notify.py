"""sd_notify through a real datagram socket, as systemd would receive it."""

import os
import socket

from sentinel.service.notify import Notifier


def test_messages_arrive_and_env_is_cleared(tmp_path):
    path = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier(env)
    assert "NOTIFY_SOCKET" not in env and n.watchdog_interval == 2.0
    n.ready("scoring 1 source")
    n.watchdog()
    n.reloading()
    n.stopping()
    got = [server.recv(4096).decode() for _ in range(4)]
    assert got[0] == "READY=1\nSTATUS=scoring 1 source"
    assert got[1] == "WATCHDOG=1"
    assert got[2].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert got[3] == "STOPPING=1"
    n.close()
    server.close()


def test_silent_outside_systemd():
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    n.ready()  # no socket, no error


def test_abstract_socket_address():
    assert Notifier({"NOTIFY_SOCKET": "@sd-notify"}).address == "\0sd-notify"
