#!/usr/bin/env python3
"""The long runs of the chaos suite (tests/integration/test_chaos.py runs the fast versions).

usage: python benchmarks/chaos.py rtsp   [--outages 20]        RTSP server killed at random up-times
       python benchmarks/chaos.py kill   [--kills 20]          SIGKILL of the daemon while alerts flow
       python benchmarks/chaos.py soak   [--sources 32] [--minutes 30]
       (all: --out DIR, default bench-out/chaos; each prints its figures and writes DIR/<name>.json)

rtsp: the demo recording served by a real RTSP server on loopback (gst-rtsp-server, Debian's
      python3), beside a real-time file source; the server is killed after a random 0.5-10 s up-time
      and restarted after a random 1-5 s, N times. Per outage: seconds from the server's return to
      the source's `connected` status, and the audio lost (status `audio_lost_s` before/after);
      whether the file source kept scoring; alert timestamps against when they were received.
kill: the demo recording looped in real time (alerts every loop), SIGKILL at a random moment
      0.5-8 s into each run, N times, a ZeroMQ subscriber listening throughout. After all: does the
      journal parse, is every alert the subscriber received in it, did each restart raise alerts.
soak: N real-time file sources (the demo recording, looped, each from its own copy) for M minutes
      with every window's score published; daemon RSS every 10 s (growth after the first 2 min),
      close lag p50/p99 from the published scores (wall-clock time of a window's last sample to its
      score being published), overruns and audio lost per source at the end.
All use the built-in demo bundle on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml
import zmq

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "sentinel" / "demo_assets"
RTSP_HELPER = ROOT / "tests" / "helpers" / "rtsp_server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Listener(threading.Thread):
    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.got, self.stop = endpoint, [], threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        sock = zmq.Context.instance().socket(zmq.SUB)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self.endpoint)
        self.ready.set()
        while not self.stop.is_set():
            if sock.poll(100):
                t, payload = sock.recv_multipart()
                self.got.append((time.time(), t.decode(), json.loads(payload)))
        sock.close(0)

    def of(self, prefix: str) -> list[tuple[float, dict]]:
        return [(at, m) for at, t, m in list(self.got) if t.startswith(prefix)]


def config(out: Path, sources: list[dict], **extra) -> tuple[Path, str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = {"device": "cpu", "web": {"enabled": False},
           "daemon": {"bundle": str(DEMO / "bundle"), "cooldown_s": 2.0},
           "alerts": {"endpoint": endpoint, "journal": str(out / "alerts.jsonl"), "clips_dir": str(out / "clips"),
                      "status_interval_s": 0.5, **extra.pop("alerts", {})},
           "sources": sources, **extra}
    path = out / "sentinel.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, endpoint


def daemon(cfg: Path) -> subprocess.Popen:
    """The daemon, its log appended to daemon.log beside the config (a pipe nobody reads would fill
    and stop it)."""
    log = open(cfg.parent / "daemon.log", "a")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "sentinel", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=log, env={**os.environ, "OMP_NUM_THREADS": "2"})


def log_of(cfg: Path) -> str:
    return (cfg.parent / "daemon.log").read_text()


def wav_of_demo(out: Path) -> Path:
    import soundfile as sf

    data, sr = sf.read(DEMO / "recording.flac", dtype="float32")
    path = out / "demo.wav"
    sf.write(path, data, sr)
    return path


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- rtsp ---------------------------------------------------------------------------------------------

def run_rtsp(out: Path, outages: int, seed: int) -> dict:
    rng = random.Random(seed)
    port = free_port()
    wav = wav_of_demo(out)

    def serve() -> subprocess.Popen:
        p = subprocess.Popen(["/usr/bin/python3", str(RTSP_HELPER), str(port), str(wav)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        assert p.stdout.readline().strip() == "ready"
        return p

    cfg, endpoint = config(out, [{"name": "cam", "kind": "rtsp", "url": f"rtsp://127.0.0.1:{port}/audio"},
                                 {"name": "steady", "kind": "file", "path": str(DEMO / "recording.flac"),
                                  "realtime": True, "loop": True}])
    sub = Listener(endpoint)
    sub.start()
    sub.ready.wait(5)
    server = serve()
    proc = daemon(cfg)
    rows = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not [m for _, m in sub.of("status.cam") if m["connected"]]:
            time.sleep(0.1)
        for i in range(outages):
            up = rng.uniform(0.5, 10.0)
            time.sleep(up)
            lost_before = sub.of("status.cam")[-1][1]["audio_lost_s"]
            server.kill()
            server.wait()
            down = rng.uniform(1.0, 5.0)
            time.sleep(down)
            server = serve()
            back = time.time()
            reconnect = None
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                ups = [at for at, m in sub.of("status.cam") if m["connected"] and at > back]
                if ups:
                    reconnect = ups[0] - back
                    break
                time.sleep(0.05)
            time.sleep(1.0)
            lost_after = sub.of("status.cam")[-1][1]["audio_lost_s"]
            rows.append({"outage": i + 1, "up_s": round(up, 2), "down_s": round(down, 2),
                         "reconnect_s": None if reconnect is None else round(reconnect, 2),
                         "audio_lost_s": round(lost_after - lost_before, 2)})
            print(json.dumps(rows[-1]), flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        sub.stop.set()
        proc.kill()
        server.kill()
    steady = [m["windows_scored"] for _, m in sub.of("status.steady")]
    skew = [at - datetime.fromisoformat(m["end"]).timestamp() for at, m in sub.of("alert.cam")]
    rec = [r["reconnect_s"] for r in rows if r["reconnect_s"] is not None]
    lost = [r["audio_lost_s"] - r["down_s"] for r in rows]
    return {"outages": outages, "reconnected": len(rec), "reconnect_s_median": pct(rec, 50),
            "reconnect_s_max": max(rec, default=float("nan")),
            "audio_lost_minus_downtime_s_median": pct(lost, 50), "audio_lost_minus_downtime_s_max": max(lost),
            "steady_windows_first_last": [steady[0], steady[-1]] if steady else None,
            "alerts_cam": len(skew), "alert_publish_minus_end_s_max": max(skew, default=float("nan")),
            "alert_publish_minus_end_s_min": min(skew, default=float("nan")), "exit_code": proc.returncode,
            "rows": rows}


# -- kill -----------------------------------------------------------------------------------------------

def run_kill(out: Path, kills: int, seed: int) -> dict:
    from sentinel.alerts.journal import Journal

    rng = random.Random(seed)
    cfg, endpoint = config(out, [{"name": "demo", "kind": "file", "path": str(DEMO / "recording.flac"),
                                  "realtime": False, "loop": True}], daemon={"cooldown_s": 0.5})
    sub = Listener(endpoint)
    sub.start()
    sub.ready.wait(5)
    per_run = []
    for i in range(kills + 1):
        before = len(sub.of("alert."))
        proc = daemon(cfg)
        at = rng.uniform(0.5, 8.0)
        time.sleep(at)
        if i < kills:
            proc.kill()
            proc.wait()
        else:
            time.sleep(3)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        per_run.append(len(sub.of("alert.")) - before)
        print(json.dumps({"run": i + 1, "killed_after_s": round(at, 2), "alerts": per_run[-1]}), flush=True)
    sub.stop.set()
    try:
        journal = Journal.read(out / "alerts.jsonl")
        parses = True
    except json.JSONDecodeError:
        journal, parses = [], False
    ids = {r.get("event_id") for r in journal}
    received = {m["event_id"] for _, m in sub.of("alert.")}
    torn = out / "alerts.jsonl.torn"
    return {"kills": kills, "journal_parses": parses, "journal_alerts": len(journal), "received": len(received),
            "received_missing_from_journal": len(received - ids), "runs_with_alerts": sum(1 for n in per_run if n),
            "runs": kills + 1, "torn_lines_set_aside": torn.read_text().count("# ") if torn.exists() else 0}


# -- soak -----------------------------------------------------------------------------------------------

def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_soak(out: Path, n: int, minutes: float) -> dict:
    wav = wav_of_demo(out)
    sources = []
    for i in range(n):
        copy = out / f"s{i:02d}.wav"
        shutil.copy(wav, copy)
        sources.append({"name": f"s{i:02d}", "kind": "file", "path": str(copy), "realtime": True, "loop": True})
    cfg, endpoint = config(out, sources, alerts={"publish_scores": True})
    sub = Listener(endpoint)
    sub.start()
    sub.ready.wait(5)
    proc = daemon(cfg)
    t0 = time.monotonic()
    rss = []
    try:
        while time.monotonic() - t0 < minutes * 60:
            time.sleep(10)
            if proc.poll() is not None:
                break
            rss.append((time.monotonic() - t0, _rss_mb(proc.pid)))
            if len(rss) % 6 == 0:
                print(json.dumps({"minute": round(rss[-1][0] / 60, 1), "rss_mb": round(rss[-1][1], 1),
                                  "scores": len(sub.got)}), flush=True)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        sub.stop.set()
        proc.kill()
    err = log_of(cfg)
    lags = [m["lag_s"] for at, t, m in sub.got if t.startswith("score.") and at - sub.got[0][0] > 120]
    last = {}
    for _, m in sub.of("status."):
        last[m["source"]] = m
    warm = [(t, r) for t, r in rss if t >= 120]
    slope = float(np.polyfit([t for t, _ in warm], [r for _, r in warm], 1)[0] * 3600) if len(warm) > 2 else None
    return {"sources": n, "minutes": minutes, "exit_code": proc.returncode,
            "rss_mb_at_2min": warm[0][1] if warm else None, "rss_mb_end": rss[-1][1] if rss else None,
            "rss_growth_mb_per_hour": slope, "lag_s_p50": pct(lags, 50), "lag_s_p99": pct(lags, 99),
            "lag_s_max": max(lags, default=float("nan")), "scores": len(lags),
            "dropped_samples_total": sum(m["dropped_samples"] for m in last.values()),
            "audio_lost_s_max": max((m["audio_lost_s"] for m in last.values()), default=None),
            "errors_logged": sum(1 for x in err.splitlines() if '"level": "error"' in x)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["rtsp", "kill", "soak"])
    ap.add_argument("--outages", type=int, default=20)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--sources", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out" / "chaos")
    a = ap.parse_args()
    out = a.out / a.what
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if a.what == "rtsp":
        res = run_rtsp(out, a.outages, a.seed)
    elif a.what == "kill":
        res = run_kill(out, a.kills, a.seed)
    else:
        res = run_soak(out, a.sources, a.minutes)
    (a.out / f"{a.what}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
