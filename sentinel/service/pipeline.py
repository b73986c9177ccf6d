"""The inference loop: cut windows from every source, score them in batches, decide, publish.

It runs in one thread and owns the publisher (ZeroMQ sockets are single-threaded), the journal
and the deciders. Sources only ever meet it through their ring buffers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sentinel.alerts.clips import clip_path, write_clip
from sentinel.alerts.schema import Alert, AlertEnd, Status, utc_iso
from sentinel.capture.source import Source
from sentinel.scoring.decision import Decider, Event
from sentinel.scoring.scorer import SpanState, WindowScorer


@dataclass
class PipelineSettings:
    hop_seconds: float = 0.5
    max_batch: int = 32
    max_wait_ms: float = 20.0
    debounce_k: int = 1
    debounce_n: int = 1
    cooldown_s: float = 10.0
    clips_dir: str | None = None
    clip_pre_s: float = 2.0
    clip_post_s: float = 2.0
    status_interval_s: float = 5.0
    emit_scores: bool = True
    """Hand every window's score to the sink (for the dashboard or alerts.publish_scores)."""
    armed: Callable[[str], bool] = lambda source: True
    """Whether a source is armed now (sentinel.alerts.arming); a disarmed one still scores and journals."""


@dataclass(frozen=True)
class SourceModel:
    """What a source is scored with: its bundle's scorer (shared by every source of that bundle, so
    they are scored in one batch) and the bundle's id."""

    scorer: WindowScorer
    bundle_id: str
    level_floor_db: float | None = None
    """Quieter than this (window level, dB) the machine counts as off; None: never (no level known)."""
    quieter_db: float | None = None
    """Quieter than this a window may be the machine stopping: held until that is known."""
    stopped_after_s: float = 5.0
    """Quiet for this long is `stopped`: no alerts until it sounds again (then its span starts afresh)."""


@dataclass
class _Track:
    source: Source
    decider: Decider
    next_start: int = 0
    windows_scored: int = 0
    dropped: int = 0
    last_score: float | None = None
    last_lag: float | None = None
    anomaly: bool = False
    span: SpanState | None = None
    """This source's history for the span component (the scorer's; reset after a gap)."""
    span_next: int | None = None
    quiet_since: float | None = None
    """Stream offset where the level fell below the floor (None: sounding)."""
    held: list[tuple[float, float, float]] = field(default_factory=list)
    """(start, end, score) of quiet windows not yet decided: alerts if the quiet is only a dropout."""
    stopped: bool = False
    run_up_until: float = float("-inf")
    """Stream offset until which a machine that just started is not judged (its run-up)."""
    span_scorer: object = None
    """The scorer `span` belongs to: a source moved to another bundle starts its span afresh."""
    open_event: str | None = None
    """event_id of the alert whose event is still going on."""
    pending_clips: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, path)


class Pipeline(threading.Thread):
    def __init__(self, models: dict[str, SourceModel], sources: list[Source], thresholds: dict[str, float],
                 settings: PipelineSettings, sink: Callable[[str, dict, bool], None], log=None, metrics=None,
                 shape: tuple[int, int] | None = None, learners: dict | None = None) -> None:
        """`models` maps each source name to what scores it; `sink(topic, record, durable)` journals
        (if durable) and publishes one record. Every model cuts windows of the same length at the
        same rate (the daemon checks, with a message naming the source); `shape` (sample rate,
        window samples) says which while no source has a model yet. `learners` (source name ->
        sentinel.service.learner.Learner) are sources still learning: not scored, but their state
        is published with the others'."""
        super().__init__(name="inference", daemon=True)
        self.models, self.settings, self.sink, self.log = dict(models), settings, sink, log
        self.metrics = metrics
        """Optional sentinel.service.metrics.Metrics (duck-typed: the pipeline needs no Prometheus)."""
        if shape is None:
            spec = next(iter(self.models.values())).scorer.extractor.spec
            shape = spec.sample_rate, spec.window_samples
        self.sr, self.window = shape
        self.learners: dict = dict(learners or {})
        self._learner_seen: dict[str, str] = {}
        self.outbox: queue.Queue[tuple[str, dict, bool]] = queue.Queue(maxsize=1000)
        """Records other threads want published (feedback): the pipeline alone touches the sink."""
        self.hop = max(1, round(settings.hop_seconds * self.sr))
        self.tracks = [
            _Track(s, Decider(thresholds[s.source_name], settings.debounce_k, settings.debounce_n,
                              settings.cooldown_s))
            for s in sources
        ]
        self._pending: queue.Queue[tuple] = queue.Queue(maxsize=1)
        self.stop_event = threading.Event()
        self.drain = True
        """On stop, score what is already buffered before returning."""
        self.batches = 0
        self.latencies: deque[float] = deque(maxlen=100_000)
        """Seconds from a window being seen complete in its ring to its decision (alert published)."""
        self.close_lags: deque[float] = deque(maxlen=100_000)
        """Seconds from the wall-clock time of a window's last sample to its decision: the latency a
        listener sees, for live sources (meaningless for files replayed faster than real time)."""
        self.busy_s = 0.0
        """Seconds spent scoring and deciding (not waiting for audio): busy_s / wall time is the load."""
        self.error: str | None = None
        self.last_beat = time.monotonic()
        self.clip_errors = 0
        self._last_clip_error = float("-inf")

    # -- windows ---------------------------------------------------------------------------------
    def _ready(self, limit: int) -> list[tuple[_Track, int]]:
        out: list[tuple[_Track, int]] = []
        progress = True
        while progress and len(out) < limit:  # round-robin so no source starves another
            progress = False
            for tr in self.tracks:
                ring = tr.source.ring
                if tr.next_start < ring.oldest:  # fell more than a buffer behind: count and skip
                    tr.dropped += ring.oldest - tr.next_start
                    if self.log:
                        self.log.warning("overrun", source=tr.source.source_name, lost=ring.oldest - tr.next_start)
                    tr.next_start = ring.oldest
                # Audio resumed after a gap: never splice across it (several short segments: skip each).
                while (cut := tr.source.timeline.breaks(tr.next_start, tr.next_start + self.window)) is not None:
                    tr.next_start = cut
                if tr.next_start + self.window <= ring.written and len(out) < limit:
                    out.append((tr, tr.next_start))
                    tr.next_start += self.hop
                    progress = True
        return out

    def thresholds(self) -> dict[str, float]:
        """The threshold in force for each source."""
        return {tr.source.source_name: tr.decider.threshold for tr in self.tracks}

    def resume_from(self, old: Pipeline) -> None:
        """Carry stream positions and decisions over from a pipeline that died (supervised restart)."""
        prev = {tr.source.source_name: tr for tr in old.tracks}
        self.tracks = [prev.get(tr.source.source_name, tr) for tr in self.tracks]
        self.batches = old.batches

    def reconfigure(self, models: dict[str, SourceModel], sources: list[Source], thresholds: dict[str, float],
                    learners: dict | None = None, from_now: frozenset[str] = frozenset()) -> None:
        """Swap models and sources at the next batch boundary (SIGHUP reload, a source that learned
        its bundle). Sources that stay keep their position in the stream, so they are scored without
        a gap (a source whose bundle changed starts its span afresh); new sources named in
        `from_now` are scored from what they hear next (a source that was learning: its past audio
        was for training). `learners` None keeps the current ones."""
        self._pending.put((models, sources, thresholds, learners, from_now), timeout=5)

    def emit(self, topic: str, record: dict, durable: bool = True) -> None:
        """Publish a record from another thread (through the pipeline's own sink, at its next batch)."""
        self.outbox.put((topic, record, durable), timeout=5)

    def _apply_pending(self) -> None:
        while True:
            try:
                topic, record, durable = self.outbox.get_nowait()
            except queue.Empty:
                break
            self.sink(topic, record, durable)
        try:
            models, sources, thresholds, learners, from_now = self._pending.get_nowait()
        except queue.Empty:
            return
        old = {tr.source.source_name: tr for tr in self.tracks}
        s = self.settings
        tracks = []
        for src in sources:
            tr = old.get(src.source_name)
            if tr is None or tr.source is not src:
                tr = _Track(src, Decider(thresholds[src.source_name], s.debounce_k, s.debounce_n, s.cooldown_s))
                if src.source_name in from_now:
                    tr.next_start = src.consumed = src.ring.written  # a paused file replay goes on
            tr.decider.threshold = thresholds[src.source_name]
            tracks.append(tr)
        self.models, self.tracks = dict(models), tracks
        if learners is not None:
            self.learners = dict(learners)
        for tr in tracks:
            if tr.source.source_name in from_now:
                self._status(tr)  # monitoring now: say so at once

    def step(self) -> int:
        """Score one batch; returns how many windows it held."""
        self._apply_pending()
        ready = self._ready(self.settings.max_batch)
        seen = time.monotonic()  # before any wait for a fuller batch: that wait is latency too
        if ready and len(ready) < self.settings.max_batch and self.settings.max_wait_ms > 0:
            time.sleep(self.settings.max_wait_ms / 1000)  # let a fuller batch gather
            ready += self._ready(self.settings.max_batch - len(ready))
        if not ready:
            return 0
        t_read = time.monotonic()
        windows = []
        keep = []
        for tr, start in ready:
            w = tr.source.ring.read(start, self.window)
            if w is None:  # overwritten between the check and the read
                tr.dropped += self.window
                continue
            windows.append(w)
            keep.append((tr, start))
        if not windows:
            return 0
        t0 = time.monotonic()
        scores = [0.0] * len(keep)
        levels: list[float | None] = [None] * len(keep)
        groups: dict[int, list[int]] = {}  # one batch per bundle: its sources (a fleet's machines) together
        for i, (tr, _) in enumerate(keep):
            groups.setdefault(id(self.models[tr.source.source_name].scorer.batch_key()), []).append(i)
        for rows in groups.values():
            scorers = [self.models[keep[i][0].source.source_name].scorer for i in rows]
            scorer = scorers[0]
            streams = [self._span_state(*keep[i]) for i in rows]
            batch = torch.from_numpy(np.stack([windows[i] for i in rows]))
            if scorer.machine is not None:
                res = scorer.score(batch, streams, machines=[s.machine for s in scorers])
            else:
                res = scorer.score(batch) if streams[0] is None else scorer.score(batch, streams)
            for i, v in zip(rows, res.scores.tolist(), strict=True):
                scores[i] = v
            if "level" in res.components:
                for i, v in zip(rows, res.components["level"].tolist(), strict=True):
                    levels[i] = v
        self.batches += 1
        if self.metrics is not None:
            self.metrics.latency.observe(time.monotonic() - t0)
            self.metrics.batch.observe(len(windows))
        for (tr, start), score, level in zip(keep, scores, levels, strict=True):
            self._decide(tr, start, score, level)
            self.latencies.append(time.monotonic() - seen)
            tr.last_lag = time.time() - tr.source.unix(start + self.window)
            self.close_lags.append(tr.last_lag)
        for tr in self.tracks:
            tr.source.consumed = tr.next_start
        self.busy_s += time.monotonic() - t_read
        return len(windows)

    def _span_state(self, tr: _Track, start: int) -> SpanState | None:
        """The track's span history, as `sentinel score` keeps it through a file: fresh when the
        scorer changed or the stream skipped (dropped audio, a restarted source)."""
        scorer = self.models[tr.source.source_name].scorer
        # Quiet windows never enter the span: a machine that was off starts its span afresh.
        if tr.span is None or tr.span_scorer is not scorer or tr.span_next != start or tr.quiet_since is not None:
            tr.span, tr.span_scorer = scorer.new_span_state(), scorer
        tr.span_next = start + self.hop
        return tr.span

    # -- decisions and sinks ---------------------------------------------------------------------
    def _decide(self, tr: _Track, start: int, score: float, level: float | None = None) -> None:
        src = tr.source
        tr.windows_scored += 1
        tr.last_score = score
        if self.metrics is not None:
            self.metrics.windows.labels(src.source_name).inc()
            self.metrics.last_score.labels(src.source_name).set(score)
        t0, t1 = start / self.sr, (start + self.window) / self.sr
        if self.settings.emit_scores:  # the daemon decides where they go (dashboard, ZeroMQ, MQTT)
            end_unix = src.unix(start + self.window)
            self.sink(f"score.{src.source_name}", {"kind": "score", "source": src.source_name, "start_offset_s": t0,
                                                    "end_offset_s": t1, "score": score, "end_unix": round(end_unix, 3),
                                                    "lag_s": round(time.time() - end_unix, 3)}, False)
        model = self.models[src.source_name]
        floor = model.level_floor_db
        if floor is not None and level is not None and level < (model.quieter_db or floor):
            # Quieter than usual: spinning down, off, or a dropout. Its windows are held until it is
            # one or the other (at most stopped_after_s), so a machine switched off raises no alert.
            if tr.quiet_since is None:
                tr.quiet_since = t0
            if tr.stopped:
                return
            if t1 - tr.quiet_since < model.stopped_after_s:
                tr.held.append((t0, t1, score))
                return
            if level < floor:
                tr.stopped, tr.held = True, []
                self._close_event(tr)
                self._status(tr)
                if self.log:
                    self.log.info("source stopped (machine off)", source=src.source_name, level_db=round(level, 1))
                return
            # quieter than normal for long, but not off: judged like any window (the held ones late)
        else:
            tr.quiet_since = None
            if tr.stopped:
                tr.stopped, tr.run_up_until = False, t0 + model.stopped_after_s
                self._status(tr)
                if self.log:
                    self.log.info("source running again", source=src.source_name)
        if t1 <= tr.run_up_until:  # a machine's run-up is not its normal running: not judged
            return
        held, tr.held = tr.held, []
        for h0, h1, hscore in held:  # a dropout shorter than stopped_after_s is decided now, late
            self._feed(tr, h0, h1, hscore)
        self._feed(tr, t0, t1, score)

    def _feed(self, tr: _Track, t0: float, t1: float, score: float) -> None:
        event = tr.decider.update(t0, t1, score)
        closed = tr.decider.closed()
        if closed is not None:
            self._alert_end(tr, closed)
        if event is not None:
            self._alert(tr, event)
        if tr.decider.event_open() != tr.anomaly:  # at once, not at the next heartbeat: HA shows it
            tr.anomaly = not tr.anomaly
            self._status(tr)

    def _close_event(self, tr: _Track) -> None:
        ending = tr.decider.close_now()
        if ending is not None:
            self._alert_end(tr, ending)
        if tr.anomaly:
            tr.anomaly = False

    def _alert(self, tr: _Track, event: Event) -> None:
        src = tr.source
        alert = Alert(
            source=src.source_name, start=utc_iso(src.unix(round(event.start_s * self.sr))),
            end=utc_iso(src.unix(round(event.end_s * self.sr))), start_offset_s=round(event.start_s, 3),
            end_offset_s=round(event.end_s, 3), opening_score=round(event.peak, 4),
            threshold=round(event.threshold, 4), bundle_id=self.models[src.source_name].bundle_id, clip=None,
            disarmed=not self.settings.armed(src.source_name),
        )
        tr.open_event = alert.event_id
        if self.settings.clips_dir:
            path = clip_path(self.settings.clips_dir, src.source_name, alert.event_id, alert.start)
            alert.clip = str(path)
            c0 = max(0, int((event.start_s - self.settings.clip_pre_s) * self.sr))
            c1 = int((event.end_s + self.settings.clip_post_s) * self.sr)
            tr.pending_clips.append((c0, c1, str(path)))
        self.sink(f"alert.{src.source_name}", alert.to_dict(), True)
        if self.metrics is not None:
            self.metrics.alerts.labels(src.source_name).inc()
        if self.log:
            self.log.info("alert", source=src.source_name, opening_score=alert.opening_score,
                          start=alert.start_offset_s)

    def _alert_end(self, tr: _Track, event: Event) -> None:
        """The event closed: its real peak and duration, journalled and published like the alert."""
        src, event_id = tr.source, tr.open_event
        tr.open_event = None
        if event_id is None:
            return
        end = AlertEnd(
            source=src.source_name, event_id=event_id, start=utc_iso(src.unix(round(event.start_s * self.sr))),
            end=utc_iso(src.unix(round(event.end_s * self.sr))), start_offset_s=round(event.start_s, 3),
            end_offset_s=round(event.end_s, 3), duration_s=round(event.end_s - event.start_s, 3),
            peak_score=round(event.peak, 4), threshold=round(event.threshold, 4),
            bundle_id=self.models[src.source_name].bundle_id,
        )
        self.sink(f"alert_end.{src.source_name}", end.to_dict(), True)
        if self.log:
            self.log.info("alert end", source=src.source_name, peak=end.peak_score, duration_s=end.duration_s)

    def _write_due_clips(self, final: bool = False) -> None:
        for tr in self.tracks:
            ring, still = tr.source.ring, []
            for c0, c1, path in tr.pending_clips:
                if ring.written >= c1 or final:
                    lo, hi = max(c0, ring.oldest), min(c1, ring.written)
                    data = ring.read(lo, hi - lo) if hi > lo else None
                    if data is not None:
                        try:
                            write_clip(Path(path), data, self.sr)
                        except OSError as e:  # a full disk costs the clip, never the alert or the loop
                            self._clip_failed(path, e)
                else:
                    still.append((c0, c1, path))
            tr.pending_clips = still

    def _clip_failed(self, path: str, e: OSError) -> None:
        self.clip_errors += 1
        if self.metrics is not None:
            self.metrics.clip_errors.set(self.clip_errors)
        now = time.monotonic()
        if self.log and now - self._last_clip_error >= 60:
            self._last_clip_error = now
            self.log.error("clip not written; the alert stands without it", clip=path, error=e.strerror or str(e),
                           failed_so_far=self.clip_errors)

    def _status(self, tr: _Track) -> None:
        armed = self.settings.armed(tr.source.source_name)
        st = Status(source=tr.source.source_name, connected=tr.source.connected, last_score=tr.last_score,
                    windows_scored=tr.windows_scored, dropped_samples=tr.dropped, time=utc_iso(time.time()),
                    anomaly=tr.anomaly and armed, audio_lost_s=round(self.audio_lost_s(tr), 3),
                    reconnects=tr.source.reconnects, armed=armed,
                    state="disconnected" if not tr.source.connected else "stopped" if tr.stopped else "monitoring",
                    bundle_id=self.models[tr.source.source_name].bundle_id,
                    lag_s=None if tr.last_lag is None else round(tr.last_lag, 3))
        self.sink(f"status.{tr.source.source_name}", st.to_dict(), False)

    def audio_lost_s(self, tr: _Track) -> float:
        """Seconds of this source's audio never scored: outages and stalls (wall time with no audio)
        plus overruns (audio that arrived but was overwritten before it could be scored)."""
        return tr.source.timeline.lost_s + tr.dropped / self.sr

    def _learner_status(self, name: str, learner) -> None:
        state = learner.state if learner.state in ("learning", "training") else "training"
        st = Status(source=name, connected=learner.source.connected, last_score=None, windows_scored=0,
                    dropped_samples=0, time=utc_iso(time.time()), reconnects=learner.source.reconnects,
                    armed=self.settings.armed(name), state=state, learn_progress=round(learner.progress, 4))
        self._learner_seen[name] = learner.state
        self.sink(f"status.{name}", st.to_dict(), False)

    def _learner_changes(self) -> None:
        for name, learner in self.learners.items():
            if self._learner_seen.get(name) != learner.state:
                self._learner_status(name, learner)

    def heartbeat(self) -> None:
        for tr in self.tracks:
            self._status(tr)
        for name, learner in self.learners.items():
            self._learner_status(name, learner)

    def run(self) -> None:
        try:
            last_status = time.monotonic()
            while not self.stop_event.is_set():
                self.last_beat = time.monotonic()
                if self.step() == 0:
                    self.stop_event.wait(0.005)
                self._write_due_clips()
                self._learner_changes()
                if time.monotonic() - last_status >= self.settings.status_interval_s:
                    self.heartbeat()
                    last_status = time.monotonic()
            # Score what is already buffered, within the shutdown budget (exit within 2 s).
            deadline = time.monotonic() + 1.2
            while self.drain and time.monotonic() < deadline and self.step():
                pass
            for tr in self.tracks:  # the stream stops with an event on: it ends here, as far as it got
                self._close_event(tr)
            self._write_due_clips(final=True)
            self.heartbeat()
        except Exception as e:
            self.error = f"{type(e).__name__}: {e}"
            if self.log:
                self.log.exception("inference loop failed")

    def idle(self) -> bool:
        """True when every source has finished and all its audio has been scored."""
        return not self.learners and all(
            tr.source.finished and tr.next_start + self.window > tr.source.ring.written for tr in self.tracks
        )
