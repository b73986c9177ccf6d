#!/usr/bin/env python3
"""Streaming benchmark: N file sources through the real daemon pipeline (ring buffers, batched
scoring, decisions, journal, ZeroMQ publisher).

usage: python benchmarks/stream.py [--bundle DIR] [--streams 1 8 32] [--realtime-streams 8 32] [--seconds 20]
       python benchmarks/stream.py --dashboard [--pairs 4] [--seconds 20]

Prints, per N: aggregate real-time factor at full speed (seconds of audio scored per second,
all sources together) and resident memory. Then N sources replayed in real time, the case the
latency and capacity targets are about: the lag from the wall-clock end of each window (its
last sample) to its decision being published, p50/p99; the backlog left at the end (windows
due but not yet scored: near zero means the N streams were kept up with); and RSS.
With --dashboard: scoring throughput (windows per second, 8 looping sources at full speed)
with the web dashboard served and a headless Chromium showing it, against the same run without,
in alternating pairs; prints each pair and the median ratio.
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
from sentinel.config import DEMO_DIR
from sentinel.service.pipeline import Pipeline, PipelineSettings, SourceModel


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(bundle, scorer, recording: Path, n: int, realtime: bool, seconds: float, tmp: Path, port: int,
        loop: bool | None = None, board=None) -> dict:
    sr = bundle.features.sample_rate
    loop = realtime if loop is None else loop
    sources = [FileSource(f"s{i}", recording, sr, 30.0, realtime=realtime, loop=loop) for i in range(n)]
    journal, pub = Journal(tmp / f"j{n}{realtime}.jsonl"), Publisher(f"tcp://127.0.0.1:{port}")
    if board is not None:
        by_name = {s.source_name: s for s in sources}
        board.audio_tail = lambda name, secs: by_name[name].ring.tail(int(secs * sr)) if name in by_name else None

    def sink(topic: str, record: dict, durable: bool) -> None:
        if durable:
            journal.append({"topic": topic, **record})
        if board is not None:
            board.state.record(topic, record)
        if not topic.startswith("score."):  # as the daemon does without alerts.publish_scores
            pub.publish(topic, record)

    settings = PipelineSettings(max_batch=64, max_wait_ms=5, cooldown_s=5, clips_dir=None, status_interval_s=5)
    model = SourceModel(scorer, bundle.bundle_id)
    pipe = Pipeline({s.source_name: model for s in sources}, sources,
                    {s.source_name: bundle.threshold for s in sources}, settings, sink)
    t0 = time.monotonic()
    for s in sources:
        s.start()
    pipe.start()
    while not (pipe.idle() if not (realtime or loop) else time.monotonic() - t0 > seconds):
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


def _chromium_cpu_s() -> float:
    """CPU seconds used so far by every Chromium process on the machine."""
    import os

    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "chrom" in stat[stat.index("(") + 1: stat.rindex(")")]:
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _pin_all_threads(cpus: set[int]) -> None:
    import contextlib
    import os

    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


def dashboard_compare(bundle, scorer, recording: Path, seconds: float, pairs: int, tmp: Path,
                      split_cores: bool = False) -> None:
    """Throughput with the dashboard open in a real browser against without, alternating.

    split_cores: Chromium on CPU 1, Sentinel on CPU 0, as when the browser runs on the operator's
    own machine: what is left is what serving a connected page costs the daemon."""
    import shutil
    import socket

    from playwright.sync_api import sync_playwright

    from sentinel.web.server import DashboardServer
    from sentinel.web.settings import WebConfig
    from sentinel.web.state import DashboardState

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("--dashboard needs Debian's chromium (make system-deps)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = bundle.features
    state = DashboardState(3600, 0.5, {"bundle": bundle.bundle_id})
    board = DashboardServer(WebConfig(port=port), state, clips_dir=None, audio_tail=lambda n, s: None,
                            features=spec, clip_pre_s=2.0)
    board.serve()
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    n, ratios, served = 8, [], []
    print(f"\ndashboard: {n} looping sources at full speed, {seconds:.0f} s a run, {pairs} pairs "
          "(windows scored per second)")
    with sync_playwright() as p:
        if split_cores:
            _pin_all_threads({1})  # the driver and browser inherit this at their start
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        if split_cores:
            _pin_all_threads({0})
        print("  Chromium on CPU 1, Sentinel (torch 1 thread) on CPU 0" if split_cores else
              "  Chromium and Sentinel share both CPUs")
        for i in range(pairs):
            modes = ["off", "served", "open"]
            got, clients, browser_load = {}, 0, 0.0
            for mode in modes[i % 3:] + modes[: i % 3]:  # rotate the order: no mode always runs first
                page = None
                if mode == "open":
                    page = browser.new_page()
                    page.goto(board.url)
                cpu0 = _chromium_cpu_s()
                r = run(bundle, scorer, recording, n, False, seconds, tmp, 59000 + i * 3 + modes.index(mode),
                        loop=True, board=None if mode == "off" else board)
                if mode == "open":
                    browser_load = (_chromium_cpu_s() - cpu0) / r["wall_s"]
                if page is not None:
                    clients = board.clients
                    page.close()
                got[mode] = r["windows"] / r["wall_s"]
            ratios.append(got["open"] / got["off"])
            served.append(got["served"] / got["off"])
            print(f"  round {i + 1}: without {got['off']:7.1f} w/s, served (no browser) {got['served']:7.1f}, "
                  f"page open {got['open']:7.1f} (browsers connected: {clients}, Chromium busy "
                  f"{browser_load:.2f} CPU) -> ratios {served[-1]:.3f}, {ratios[-1]:.3f}")
        browser.close()
    board.close()
    print(f"served without a browser / off, median of {pairs} rounds: {float(np.median(served)):.3f}")
    print(f"page open in Chromium on this machine / off, median of {pairs} rounds: {float(np.median(ratios)):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=DEMO_DIR / "bundle")
    ap.add_argument("--recording", type=Path, default=DEMO_DIR / "recording.flac")
    ap.add_argument("--streams", type=int, nargs="*", default=[1, 8, 32])
    ap.add_argument("--realtime-streams", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--seconds", type=float, default=20.0, help="real-time run length")
    ap.add_argument("--batch-size", type=int, default=0,
                    help="windows per network pass; 0 = Sentinel's automatic choice, whatever the bundle says")
    ap.add_argument("--dashboard", action="store_true",
                    help="only: throughput with the dashboard open in headless Chromium against without")
    ap.add_argument("--pairs", type=int, default=3, help="--dashboard: rounds of without / served / page open")
    a = ap.parse_args()
    torch.set_num_threads(2)
    bundle = load_bundle(a.bundle)
    scorer = bundle.scorer("cpu", dataclasses.replace(bundle.scoring, batch_size=a.batch_size or None))
    print(f"bundle {a.bundle} ({bundle.bundle_id}), model base {bundle.model.config.base_channels}, "
          f"window {bundle.features.window_seconds:.3f} s, hop {0.5} s, "
          f"torch threads {torch.get_num_threads()}, scorer batch {scorer.batch_size}")
    if a.dashboard:
        with tempfile.TemporaryDirectory() as tmp:
            dashboard_compare(bundle, scorer, a.recording, a.seconds, a.pairs, Path(tmp))
            torch.set_num_threads(1)
            dashboard_compare(bundle, scorer, a.recording, a.seconds, a.pairs, Path(tmp), split_cores=True)
        return 0
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
