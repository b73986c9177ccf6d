"""Commands that teach a running installation its machines: `record` captures normal audio from
the configured live sources, `feedback` tells the daemon an alert was normal. Each returns an exit
code; cli.py dispatches."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from sentinel.errors import ConfigError


def _record_rate(cfg) -> int:
    """The sample rate to record at: the daemon's bundles' (what it will be scored at), else training's."""
    from sentinel.bundle import load_bundle
    from sentinel.errors import SentinelError
    from sentinel.features.spec import FeatureSpec

    for sc in cfg.sources:
        path = Path(sc.bundle_path(cfg.daemon))
        if path.is_dir():
            try:
                return load_bundle(path).features.sample_rate
            except SentinelError:
                continue
    return FeatureSpec().sample_rate


def cmd_record(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sentinel.capture.recorder import SegmentRecorder, existing_segments
    from sentinel.config import load_config
    from sentinel.logs import get_logger
    from sentinel.service.daemon import build_source

    cfg = load_config(args.config)
    names = args.source or [s.name for s in cfg.sources]
    known = {s.name: s for s in cfg.sources}
    for n in names:
        if n not in known:
            raise ConfigError(f"--source {n}: no such source in {args.config}; it has {', '.join(known)}")
    sr, target = _record_rate(cfg), args.minutes * 60
    log = get_logger("sentinel.record")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    jobs = []
    for i, n in enumerate(names):
        out = Path(args.out) / n
        done = sum(s.seconds for s in existing_segments(out))  # resumes where an earlier run stopped
        src = build_source(known[n], sr, cfg.daemon.buffer_seconds, log)
        bar = tqdm(total=round(target), initial=min(round(done), round(target)), desc=n, unit="s", position=i,
                   dynamic_ncols=True, disable=None)
        jobs.append({"name": n, "source": src, "recorder": SegmentRecorder(src, out, args.segment_s),
                     "done": done, "bar": bar, "out": out})
    for j in jobs:
        if j["done"] < target:
            j["source"].start()
    try:
        while not stop.wait(0.2):
            active = [j for j in jobs if j["done"] < target]
            if not active:
                break
            for j in active:
                finished = j["source"].finished
                for seg in j["recorder"].poll(final=finished, budget_s=target - j["done"]):
                    j["done"] += seg.seconds
                    j["bar"].update(min(round(seg.seconds), max(0, round(target - j["bar"].n))))
                if finished and j["done"] < target:  # a file played once: it has no more to give
                    print(f"sentinel: warning: {j['name']}: the source ended after {j['done']:.0f} s of "
                          f"{target:.0f} s", file=sys.stderr)
                    j["done"] = target
        if stop.is_set():
            for j in jobs:  # interrupted: what was heard is kept, and the next run goes on from it
                for seg in j["recorder"].poll(final=True):
                    j["done"] += seg.seconds
    finally:
        for j in jobs:
            j["source"].stop()
            j["bar"].close()
    for j in jobs:
        segs = existing_segments(j["out"])
        print(json.dumps({"source": j["name"], "folder": str(j["out"]), "segments": len(segs),
                          "seconds": round(sum(s.seconds for s in segs), 1), "sample_rate": sr}))
    return 130 if stop.is_set() else 0


def cmd_feedback(args: argparse.Namespace) -> int:
    import getpass
    import socket
    import time

    from sentinel.config import load_config
    from sentinel.errors import DataError
    from sentinel.service.feedback import submit

    if not args.undo and args.label != "normal":
        raise DataError(f"feedback {args.event_id}: say `normal` (sentinel feedback EVENT_ID normal), or --undo")
    cfg = load_config(args.config)
    try:
        req = submit(cfg.daemon.state_dir, args.event_id, "undo" if args.undo else "normal",
                     by=f"cli {getpass.getuser()}@{socket.gethostname()}")
    except ValueError as e:
        raise DataError(f"feedback: {e}") from None
    result = req.with_name(req.stem + ".result.json")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline and not result.exists():
        time.sleep(0.2)
    if not result.exists():
        print(json.dumps({"queued": str(req), "note": "the daemon applies it when it runs (it was not done within "
                          f"{args.wait:g} s)"}))
        return 3
    out = json.loads(result.read_text())
    print(json.dumps(out))
    if "error" in out:
        raise DataError(f"feedback {args.event_id}: {out['error']}")
    return 0


COMMANDS = {"record": cmd_record, "feedback": cmd_feedback}
