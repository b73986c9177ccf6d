"""A real RTSP server on loopback for tests (Debian's gst-rtsp-server; run with /usr/bin/python3).

usage: rtsp_server.py PORT WAV   serves WAV as 16 kHz mono L16 at rtsp://127.0.0.1:PORT/audio,
from the start for every client, paced in real time. Prints "ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, wav = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={wav} ! wavparse ! audioconvert ! audioresample ! "
    "audio/x-raw,rate=16000,channels=1 ! rtpL16pay name=pay0 pt=96 )"
)
factory.set_shared(False)
server.get_mount_points().add_factory("/audio", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
