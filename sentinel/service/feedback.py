""""That was normal" (and its undo), from the CLI, the dashboard and MQTT, applied by the daemon.

Every path only queues a request: a small JSON file under <state_dir>/feedback/requests/, so one
made while the daemon is down is applied when it starts, and a burst is applied in order, one at
a time. The work (scoring the clip, recalibrating) runs in a child process at the lowest CPU
priority (sentinel.training.feedback_job), so monitored sources keep real time; the daemon then
swaps the new bundle in and journals a `feedback` record. The result is written beside the
request (`<request>.result.json`) for `sentinel feedback` to print.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sentinel.alerts.journal import lines_newest_file_first
from sentinel.service.learner import _low_priority

ACTIONS = ("normal", "undo")
CLIP_WAIT_S = 20.0
"""How long a request waits for its alert's clip to be written (clip_post_s after the alert)."""
_EVENT_ID = re.compile(r"^[0-9a-f]{8,64}$")


def requests_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / "feedback" / "requests"


def submit(state_dir: str | Path, event_id: str, action: str, by: str) -> Path:
    """Queue one request; returns its file (the result appears beside it). Raises ValueError on a
    malformed event id or action (a user typo, a bad MQTT payload)."""
    if not _EVENT_ID.match(event_id or ""):
        raise ValueError(f"event id {event_id!r}: not an alert's event_id (32 hex digits, as in the journal)")
    if action not in ACTIONS:
        raise ValueError(f"action {action!r}: use 'normal' (or undo)")
    d = requests_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"event_id": event_id, "action": action, "by": by, "time": time.time()}))
    os.replace(tmp, path)
    return path


def find_alert(journal: str | Path, event_id: str) -> dict | None:
    """The alert record of `event_id` in the journal or a rotated one (None: not there)."""
    for line in lines_newest_file_first(journal):  # across rotations
        if event_id.encode() in line:
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if rec.get("kind") == "alert" and rec.get("event_id") == event_id:
                    return rec
    return None


@dataclass
class Done:
    """A finished request, for the daemon to swap in (ok) and journal."""

    request: dict
    request_path: Path
    alert: dict
    bundle_path: str
    out: Path
    result: dict
    ok: bool


class FeedbackQueue:
    def __init__(self, state_dir: str | Path, journal: str | Path, log=None) -> None:
        self.dir = requests_dir(state_dir)
        self.work = Path(state_dir) / "feedback" / "work"
        self.journal, self.log = Path(journal), log
        self._proc: subprocess.Popen | None = None
        self._current: tuple | None = None

    def poll(self, resolve) -> Done | None:
        """Advance: start the oldest request, or collect the one running. `resolve(alert)` gives
        (bundle path, normal recordings to recalibrate on, clip_pre_s) for the alert's source, or
        None when the source is gone."""
        if self._proc is not None:
            rc = self._proc.poll()
            if rc is None:
                return None
            req, req_path, alert, bundle_path, out = self._current or ()
            self._proc, self._current = None, None
            result = self._last_line(out.parent / "job.log")
            ok = rc == 0 and result.get("event") == "done" and out.is_dir()
            if not ok and "error" not in result:
                result["error"] = f"the feedback job exited with status {rc}"
            return Done(req, req_path, alert, bundle_path, out, result, ok)
        pending = sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []
        pending = [p for p in pending if not p.name.endswith(".result.json")]
        if not pending:
            return None
        req_path = pending[0]
        try:
            req = json.loads(req_path.read_text())
        except (OSError, ValueError):
            self.finish(req_path, {"error": "unreadable request"})
            return None
        alert = find_alert(self.journal, req["event_id"])
        if alert is None:
            self.finish(req_path, {"error": f"event {req['event_id']}: no such alert in the journal {self.journal}"})
            return None
        target = resolve(alert)
        if target is None:
            self.finish(req_path, {"error": f"source {alert['source']}: no longer configured, still learning, or a "
                                   "fleet bundle's machine (feedback teaches bundles of one machine)"})
            return None
        bundle_path, normal, pre_s = target
        clip_missing = not (alert.get("clip") and Path(alert["clip"]).is_file())
        if req["action"] == "normal" and clip_missing and time.time() - req.get("time", 0) < CLIP_WAIT_S:
            return None  # asked the moment it alerted: its clip is written clip_post_s later
        if req["action"] == "normal" and clip_missing:
            self.finish(req_path, {"error": f"event {req['event_id']}: its clip is gone (alerts.clips_dir off, or "
                                   "removed by retention); nothing to learn from"})
            return None
        work = self.work / req_path.stem
        work.mkdir(parents=True, exist_ok=True)
        out = work / "bundle"
        job = {"bundle": bundle_path, "event_id": req["event_id"], "action": req["action"], "clip": alert.get("clip"),
               "pre_s": pre_s, "normal": normal, "out": str(out)}
        (work / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(work / "job.log", "ab") as log_file:
            cmd = [sys.executable, "-m", "sentinel.training.feedback_job", str(work / "job.json")]
            self._proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env, preexec_fn=_low_priority)
        self._current = (req, req_path, alert, bundle_path, out)
        if self.log:
            self.log.info("feedback: applying", event_id=req["event_id"], action=req["action"], source=alert["source"])
        return None

    @staticmethod
    def _last_line(path: Path) -> dict:
        try:
            lines = path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return {}
        for line in reversed(lines):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    return json.loads(line)
        return {"error": lines[-1][:300]} if lines else {}

    def finish(self, req_path: Path, result: dict) -> None:
        """Write the result beside the request and take the request off the queue."""
        tmp = req_path.with_suffix(".result.tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, req_path.with_name(req_path.stem + ".result.json"))
        req_path.unlink(missing_ok=True)
        if "error" in result and self.log:
            self.log.error("feedback refused", error=result["error"])

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # the request stays queued: applied again at the next start
            proc.wait(timeout=1)
