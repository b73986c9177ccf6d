"""A source's learning phase: record what it hears until enough of its machine running is kept,
train its bundle in a child process at the lowest CPU priority with one thread (so the sources
being monitored keep real time), and say when the bundle is in place.

States: `learning` (recording; `progress` is the share of the minutes kept so far), `training`
(`progress` is the share of the training steps done), `ready` (the bundle exists: the daemon
switches the source to monitoring), `failed` (the child's error is logged; tried again after
RETRY_S). Everything lives in the source's learn folder, so a daemon killed at any point resumes:
segments already written are kept, training continues from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from sentinel.capture.recorder import Segment, SegmentRecorder, existing_segments
from sentinel.capture.source import Source
from sentinel.config import LearnConfig

OFF_BELOW_DB = 20.0
"""A segment this much quieter than the loud end of the recording (its 90th percentile level) was
recorded with the machine off, or nearly: it is left out of training (and recorded time again)."""
SILENCE_DBFS = -90.0
"""Digital silence (a muted input) is never a machine running."""
RETRY_S = 60.0


def running_segments(segments: list[Segment]) -> list[Segment]:
    """The segments recorded with the machine running (see OFF_BELOW_DB)."""
    if not segments:
        return []
    loud = float(np.percentile([s.level_db for s in segments], 90))
    return [s for s in segments if s.level_db >= max(SILENCE_DBFS, loud - OFF_BELOW_DB)]


def _low_priority() -> None:
    """In the child before exec: idle CPU class (else nice 19), and die with the daemon."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Learner(threading.Thread):
    def __init__(self, source: Source, learn: LearnConfig, workdir: str | Path, bundle_out: str | Path,
                 features: dict | None = None, hop_seconds: float | None = None, log=None) -> None:
        """`features`/`hop_seconds`: those of the daemon's other bundles, so the learned one cuts the
        same windows (None: the training config's)."""
        super().__init__(name=f"learn-{source.source_name}", daemon=True)
        self.source, self.learn = source, learn
        self.workdir, self.bundle_out = Path(workdir).resolve(), Path(bundle_out).resolve()
        self.features, self.hop_seconds = features, hop_seconds
        self.log = log.bind(source=source.source_name) if log is not None else None
        self.state = "learning"
        self.progress = 0.0
        self.recorded_s = 0.0
        """Seconds kept so far (the machine running)."""
        self.error: str | None = None
        self.stop_event = threading.Event()
        self._new_source: Source | None = None
        self._proc: subprocess.Popen | None = None
        self._failed_at = 0.0
        self._segments = existing_segments(self.audio_dir)  # a resumed phase starts where it stopped
        self._measure(self._segments)

    @property
    def audio_dir(self) -> Path:
        return self.workdir / "audio"

    def replace_source(self, source: Source) -> None:
        """The source was restarted (a new thread and ring): record from that one on."""
        self._new_source = source

    def stop(self) -> None:
        self.stop_event.set()

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        segments = self._segments
        recorder = SegmentRecorder(self.source, self.audio_dir, self.learn.segment_s)
        if (self.workdir / "job.json").is_file():  # killed while training: go on from its checkpoint
            self._spawn()
        try:
            while not self.stop_event.wait(0.25):
                if self._new_source is not None:
                    self.source, self._new_source = self._new_source, None
                    recorder = SegmentRecorder(self.source, self.audio_dir, self.learn.segment_s)
                if self.state == "learning":
                    segments += recorder.poll()
                    self._learning(segments)
                elif self.state == "training":
                    self._training()
                elif self.state == "failed" and time.monotonic() - self._failed_at >= RETRY_S:
                    self._spawn()
            if self.state == "learning":
                recorder.poll(final=True)  # what was heard is kept for the next start
        except Exception as e:  # a learner must never take the daemon down; it says why and stops
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"
            if self.log:
                self.log.exception("learning failed")
        finally:
            self._kill_child()

    def _measure(self, segments: list[Segment]) -> list[Segment]:
        kept = running_segments(segments)
        self.recorded_s = sum(s.seconds for s in kept)
        self.progress = round(min(1.0, self.recorded_s / (self.learn.minutes * 60)), 4)
        return kept

    def _learning(self, segments: list[Segment]) -> None:
        kept = self._measure(segments)
        target = self.learn.minutes * 60
        if self.recorded_s >= target and len(kept) >= 2:
            if self.log:
                self.log.info("learning: recorded; training", seconds=round(self.recorded_s, 1),
                              segments=len(kept), left_out=len(segments) - len(kept))
            self._write_job(kept)
            self._spawn()
        elif self.recorded_s >= target:
            self.progress = 0.99  # one segment cannot be split into training and calibration: one more

    def _write_job(self, kept: list[Segment]) -> None:
        n_cal = max(1, round(self.learn.calibration_fraction * len(kept)))  # the latest: never trained on
        job = {"source": self.source.source_name, "train": [str(s.path) for s in kept[:-n_cal]],
               "calibrate": [str(s.path) for s in kept[-n_cal:]], "out": str(self.bundle_out),
               "steps": self.learn.steps, "features": self.features, "hop_seconds": self.hop_seconds,
               "false_alarms_per_hour": self.learn.false_alarms_per_hour,
               "train_config": str(Path(self.learn.train_config).resolve()) if self.learn.train_config else None}
        tmp = self.workdir / "job.json.tmp"
        tmp.write_text(json.dumps(job, indent=1))
        os.replace(tmp, self.workdir / "job.json")

    def _spawn(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
        with open(self.workdir / "train.log", "ab") as out:
            self._proc = subprocess.Popen([sys.executable, "-m", "sentinel.training.learn_job", str(self.workdir)],
                                          stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                          preexec_fn=_low_priority)
        self.state, self.progress = "training", self._steps_done()

    def _steps_done(self) -> float:
        try:
            return float(json.loads((self.workdir / "progress.json").read_text())["progress"])
        except (OSError, ValueError, KeyError):
            return 0.0

    def _training(self) -> None:
        assert self._proc is not None
        self.progress = self._steps_done()
        rc = self._proc.poll()
        if rc is None:
            return
        self._proc = None
        if rc == 0 and self.bundle_out.is_dir():
            (self.workdir / "job.json").rename(self.workdir / "job.done.json")
            self.state, self.progress = "ready", 1.0
            if self.log:
                self.log.info("learning: bundle trained and calibrated", bundle=str(self.bundle_out))
            return
        self.state, self._failed_at = "failed", time.monotonic()
        self.error = self._last_error() or f"training exited with status {rc}"
        if self.log:
            self.log.error(f"learning: training failed ({self.error}); retrying in {RETRY_S:.0f} s",
                           log=str(self.workdir / "train.log"))

    def _last_error(self) -> str | None:
        try:
            lines = (self.workdir / "train.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return None
        for line in reversed(lines[-50:]):
            if line.startswith("{") and '"failed"' in line:
                with contextlib.suppress(ValueError):
                    return json.loads(line).get("error")
        return lines[-1][:300] if lines else None

    def _kill_child(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # its checkpoint is on disk: the next start resumes from there
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
            if proc.poll() is None:
                proc.kill()
