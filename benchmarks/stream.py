#!/usr/bin/env python3
"""Streaming benchmark: N file sources through the real daemon pipeline (ring buffers, batched
scoring, decisions, journal, ZeroMQ publisher).

usage: python benchmarks/stream.py [--bundle DIR] [--streams 1 8 32] [--realtime-streams 8 32] [--seconds 20]

Prints, per N: aggregate real-time factor at full speed (seconds of audio scored per second,
all sources together) and resident memory. Then N sources replayed in real time, the case the
latency and capacity targets are about: the lag from the wall-clock end of each window (its
last sample) to its decision being published, p50/p99; the backlog left at the end (windows
due but not yet scored: near zero means the N streams were kept up with); and RSS.
Without --bundle it trains nothing: it uses the demo bundle (a small model); pass a bundle
trained with the default config for the default-model figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sentinel.alerts.journal import Journal
from sentinel.alerts.publisher import Publisher
from sentinel.bundle import load_bundle
from sentinel.capture.file import FileSource
from sentinel.service.daemon import DEMO_DIR
from sentinel.service.pipeline import Pipeline, PipelineSettings


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(bundle, scorer, recording: Path, n: int, realtime: bool, seconds: float, tmp: Path, port: int) -> dict:
    sr = bundle.features.sample_rate
    sources = [FileSource(f"s{i}", recording, sr, 30.0, realtime=realtime, loop=realtime) for i in range(n)]
    journal, pub = Journal(tmp / f"j{n}{realtime}.jsonl"), Publisher(f"tcp://127.0.0.1:{port}")

    def sink(topic: str, record: dict, durable: bool) -> None:
        if durable:
            journal.append({"topic": topic, **record})
        pub.publish(topic, record)

    settings = PipelineSettings(max_batch=64, max_wait_ms=5, cooldown_s=5, clips_dir=None, status_interval_s=5)
    pipe = Pipeline(scorer, sources, {s.source_name: bundle.threshold for s in sources}, settings,
                    bundle.bundle_id, sink)
    t0 = time.monotonic()
    for s in sources:
        s.start()
    pipe.start()
    while not (pipe.idle() if not realtime else time.monotonic() - t0 > seconds):
        time.sleep(0.01)
    wall = time.monotonic() - t0
    for s in sources:
        s.stop()
    pipe.drain = False
    pipe.stop_event.set()
    pipe.join()
    journal.close()
    pub.close()
    scored = sum(t.windows_scored for t in pipe.tracks)
    audio_s = sum(t.next_start for t in pipe.tracks) / sr
    lat = np.array(pipe.close_lags if realtime else pipe.latencies) * 1000
    backlog = sum(max(0, (t.source.ring.written - t.next_start - pipe.window) // pipe.hop + 1) for t in pipe.tracks)
    dropped = sum(t.dropped for t in pipe.tracks) / sr
    return {"n": n, "audio_s": audio_s, "wall_s": wall, "rtf": audio_s / wall, "windows": scored,
            "batches": pipe.batches, "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "rss_mb": rss_mb(), "backlog": int(backlog), "dropped_s": dropped,
            "load": pipe.busy_s / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEMO_DIR / "bundle")
    ap.add_argument("--recording", type=Path, default=DEMO_DIR / "recording.flac")
    ap.add_argument("--streams", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--realtime-streams", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--seconds", type=float, default=20.0, help="real-time run length")
    ap.add_argument("--batch-size", type=int, default=0,
                    help="windows per network pass; 0 = Sentinel's automatic choice, whatever the bundle says")
    a = ap.parse_args()
    torch.set_num_threads(2)
    bundle = load_bundle(a.bundle)
    scorer = bundle.scorer("cpu", dataclasses.replace(bundle.scoring, batch_size=a.batch_size or None))
    print(f"bundle {a.bundle} ({bundle.bundle_id}), model base {bundle.model.config.base_channels}, "
          f"window {bundle.features.window_seconds:.3f} s, hop {0.5} s, "
          f"torch threads {torch.get_num_threads()}, scorer batch {scorer.batch_size}")
    base_rss = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(bundle, scorer, a.recording, n, False, a.seconds, Path(tmp), 57000 + n) for n in a.streams]
        live = [run(bundle, scorer, a.recording, n, True, a.seconds, Path(tmp), 58000 + n)
                for n in a.realtime_streams]
    print(f"\n{'mode':<10} {'N':>3} {'audio s':>8} {'wall s':>7} {'RTF':>7} {'windows':>8} {'batch':>6} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'backlog':>7} {'lost s':>6} {'load':>5} {'RSS MB':>7}")
    for r, mode in [*((r, "full-speed") for r in rows), *((r, "real-time") for r in live)]:
        print(f"{mode:<10} {r['n']:>3} {r['audio_s']:8.1f} {r['wall_s']:7.1f} {r['rtf']:7.1f} {r['windows']:8d} "
              f"{r['windows'] / max(r['batches'], 1):6.1f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
              f"{r['backlog']:7d} {r['dropped_s']:6.1f} {r['load']:5.2f} {r['rss_mb']:7.0f}")
    for r in live:
        print(f"real-time, {r['n']} streams: inference loop busy {100 * r['load']:.0f} % of the time -> capacity "
              f"about {r['n'] / max(r['load'], 1e-9):.0f} streams on this machine")
    print(f"(RSS before the runs: {base_rss:.0f} MB. Full-speed latencies are queueing time, not a target; "
          "real-time ones run from the wall-clock end of each window to its published decision.)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
