#!/usr/bin/env python3
"""Learning where it runs (sources[].learn) and "that was normal", measured on the real daemon.

usage: python benchmarks/learning.py time [--minutes 5] [--steps N]   # sentinel run -> monitoring
       python benchmarks/learning.py lag [--seconds 60]                # 8 real-time sources, one training
       python benchmarks/learning.py feedback [--minutes 20]           # false alarms/h and TPR, before/after

time: a real-time source with learn: {minutes: M}: seconds from start to the first `monitoring`
status, split into recording and training, and training steps per second (1 thread, idle class).
lag: the lag (window's last sample heard -> decision) p50/p99 of 7 real-time sources scored with
the demo bundle while an 8th trains its bundle, against the same 8 with nothing training.
feedback: a machine with a harmless knock every 30 s (each knock a new instance) and, separately,
fault clips (rattle, whine): false alarms per hour on the knocking recording and the share of
fault clips flagged, with the demo bundle as it is, then after one "that was normal" on the clip
of one knock (the daemon's own feedback job code; the clip as the daemon writes it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
import zmq

from sentinel import synth
from sentinel.config import DEMO_DIR

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
SENTINEL = [sys.executable, "-m", "sentinel"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(tmp: Path, sources: list[dict], bundle: str | None = None, **alerts) -> tuple[subprocess.Popen, str]:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    cfg = {"device": "cpu", "daemon": {"state_dir": str(tmp / "state"), **({"bundle": bundle} if bundle else {})},
           "alerts": {"endpoint": endpoint, "journal": str(tmp / "alerts.jsonl"), "arming_file": str(tmp / "arm.json"),
                      "clips_dir": None, "status_interval_s": 1.0, **alerts},
           "web": {"enabled": False}, "sources": sources}
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([*SENTINEL, "run", "--config", str(tmp / "run.yaml")], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "daemon.log", "w"), cwd=ROOT)  # noqa: SIM115
    return proc, endpoint


def _sub(endpoint: str, topic: str = ""):
    s = zmq.Context.instance().socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, topic.encode())
    s.connect(endpoint)
    return s


def _messages(sock, seconds: float):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if sock.poll(200):
            t, payload = sock.recv_multipart()
            yield t.decode(), json.loads(payload)


def _machine_file(path: Path, seconds: float, seed: int) -> Path:
    sf.write(path, synth.machine(np.random.default_rng(seed), seconds), SR)
    return path


def cmd_time(args) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wav = _machine_file(tmp / "fan.wav", 120.0, 1)
        learn = {"minutes": args.minutes, **({"steps": args.steps} if args.steps else {})}
        proc, endpoint = _daemon(tmp, [{"name": "fan", "kind": "file", "path": str(wav), "realtime": True,
                                        "loop": True, "learn": learn}])
        sock, t0, t_train, t_mon = _sub(endpoint, "status.fan"), time.monotonic(), None, None
        try:
            for _, m in _messages(sock, args.minutes * 60 + 7200):
                if m["state"] == "training" and t_train is None:
                    t_train = time.monotonic()
                if m["state"] == "monitoring":
                    t_mon = time.monotonic()
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        meta = json.loads((tmp / "state" / "learn" / "fan" / "bundle" / "bundle.json").read_text())
        steps, secs = meta["training"]["steps"], meta["training"]["seconds"]
        print(f"learn minutes={args.minutes} steps={steps}: start -> monitoring {t_mon - t0:.0f} s "
              f"(recording {t_train - t0:.0f} s, training+calibration {t_mon - t_train:.0f} s; "
              f"{steps / secs:.2f} steps/s on 1 thread at idle priority, {secs:.0f} s of it training)")


def cmd_lag(args) -> None:
    results = {}
    for case in ("none training", "one training"):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            sources = [{"name": f"s{i}", "kind": "file", "path": str(_machine_file(tmp / f"s{i}.wav", 30.0, i)),
                        "realtime": True, "loop": True} for i in range(8)]
            if case == "one training":  # steps enough to train throughout the measurement
                sources[7]["learn"] = {"minutes": 0.2, "steps": 5000}
            proc, endpoint = _daemon(tmp, sources, bundle=str(DEMO_DIR / "bundle"), publish_scores=True)
            sock, lags, state = _sub(endpoint), [], None
            try:
                if case == "one training":  # measure only while it trains
                    for t, m in _messages(sock, 120):
                        if t == "status.s7" and m["state"] == "training":
                            break
                else:
                    for _ in _messages(sock, 15):  # the same warm-up as the other case, about
                        pass
                for t, m in _messages(sock, args.seconds):
                    if t.startswith("score.") and t != "score.s7":
                        lags.append(m["lag_s"])
                    if t == "status.s7":
                        state = m["state"]
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            lags_a = np.array(lags)
            results[case] = (np.percentile(lags_a, 50), np.percentile(lags_a, 99), len(lags_a), state)
            print(f"{case}: 7 sources lag p50 {results[case][0] * 1000:.0f} ms, p99 {results[case][1] * 1000:.0f} ms "
                  f"over {len(lags_a)} windows (source 8: {state})", flush=True)
    a, b = results["none training"], results["one training"]
    print(f"ratio one training / none: p50 {b[0] / a[0]:.2f}x, p99 {b[1] / a[1]:.2f}x")


def _events(scores: np.ndarray, thr: float) -> int:
    above = (scores > thr).astype(int)
    return int(np.sum(np.diff(np.concatenate([[0], above])) == 1))


def cmd_feedback(args) -> None:
    import torch

    from sentinel.bundle import load_bundle
    from sentinel.training.feedback_job import accept

    torch.set_num_threads(2)
    bundle = load_bundle(DEMO_DIR / "bundle")
    rng = np.random.default_rng(7)
    seconds = args.minutes * 60
    knocking = synth.machine(rng, seconds)
    knocks = np.arange(15.0, seconds - 5, 30.0)
    for at in knocks:  # each knock drawn afresh (level and timing vary): the same kind, not the same samples
        knocking = synth.inject(rng, knocking, at_s=float(at), kind="knock", seconds=0.5,
                                level=float(rng.uniform(0.8, 1.2)))
    faults = [synth.inject(rng, synth.machine(rng, 6.0), at_s=3.0, kind=k, seconds=0.6) for k in ("rattle", "whine")
              for _ in range(args.faults)]
    # The clip the daemon would write of one knock (clip_pre_s 2 s before, 2 s after), in a fresh recording.
    one = synth.inject(rng, synth.machine(rng, 8.0), at_s=4.0, kind="knock", seconds=0.5)
    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "knock.wav"
        sf.write(clip, one[int(2.0 * SR):int(6.5 * SR)], SR)

        def measure(b, label: str) -> None:
            sc = b.scorer(torch.device("cpu"))
            thr = b.threshold
            rec = sc.score_recording(torch.from_numpy(knocking.astype(np.float32))).scores.numpy()
            fa = _events(rec, thr) / (seconds / 3600)
            near_knock = sum(bool((rec[[i for i, s in enumerate(np.arange(len(rec)) * sc.config.hop_seconds)
                                        if at - 1 <= s <= at + 1]] > thr).any()) for at in knocks)
            flagged = [bool((sc.score_recording(torch.from_numpy(f.astype(np.float32))).scores > thr).any())
                       for f in faults]
            print(f"{label}: threshold {thr:.3f}; knocking recording: {fa:.1f} false alarms/h ({near_knock}/"
                  f"{len(knocks)} knocks alert); faults flagged {sum(flagged)}/{len(flagged)} "
                  f"(TPR {np.mean(flagged):.2f}: rattle {np.mean(flagged[:args.faults]):.2f}, "
                  f"whine {np.mean(flagged[args.faults:]):.2f})", flush=True)

        measure(bundle, "before feedback")
        post, n, radius = accept(bundle, bundle.scorer(torch.device("cpu")), str(clip), "bench", 2.0)
        bundle.post = post
        print(f"one 'that was normal' on a knock clip: {n} windows accepted, radius {radius:.3f}")
        measure(bundle, "after feedback ")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("time")
    t.add_argument("--minutes", type=float, default=5.0)
    t.add_argument("--steps", type=int, default=None)
    g = sub.add_parser("lag")
    g.add_argument("--seconds", type=float, default=60.0)
    f = sub.add_parser("feedback")
    f.add_argument("--minutes", type=float, default=20.0)
    f.add_argument("--faults", type=int, default=10)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    {"time": cmd_time, "lag": cmd_lag, "feedback": cmd_feedback}[args.cmd](args)


if __name__ == "__main__":
    main()
