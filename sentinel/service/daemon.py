"""The daemon: builds the parts from the config in one place and stops them in reverse order.

Signal handlers only record the signal; the main loop acts on it: SIGINT/SIGTERM stop,
SIGHUP reloads config and bundle (a bad new config is refused and the old one stays).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from sentinel import __version__
from sentinel.alerts.arming import Arming
from sentinel.alerts.journal import Journal
from sentinel.alerts.publisher import Publisher
from sentinel.alerts.retention import ClipRetention
from sentinel.bundle import Bundle, load_bundle
from sentinel.capture.file import FileSource
from sentinel.capture.microphone import MicrophoneSource
from sentinel.capture.source import Source
from sentinel.capture.stream import StreamSource
from sentinel.config import RunConfig, SourceConfig, load_config
from sentinel.credentials import credential_path
from sentinel.devices import resolve_device
from sentinel.errors import ConfigError, SentinelError
from sentinel.logs import get_logger
from sentinel.service.feedback import FeedbackQueue
from sentinel.service.learner import Learner
from sentinel.service.metrics import Metrics
from sentinel.service.notify import Notifier
from sentinel.service.pipeline import Pipeline, PipelineSettings, SourceModel
from sentinel.service.supervisor import RestartPolicy

STALE_AUDIO_S = 15.0
"""A source silent for longer than this no longer counts as delivering audio (watchdog)."""
RETENTION_EVERY_S = 2.0
"""How often the clips folder is swept (listing a folder of clips takes milliseconds)."""
HEALTHY_AFTER_S = 60.0
"""A part that has run this long since its last restart gets its first, short restart delay back."""


def build_source(sc: SourceConfig, sample_rate: int, buffer_seconds: float, log) -> Source:
    if sc.kind == "file":
        return FileSource(sc.name, sc.path or "", sample_rate, buffer_seconds, realtime=sc.realtime, loop=sc.loop,
                          log=log)
    if sc.kind == "microphone":
        return MicrophoneSource(sc.name, sc.device, sample_rate, buffer_seconds, reconnect_max_s=sc.reconnect_max_s,
                                log=log)
    if sc.kind == "rtsp":
        return StreamSource(sc.name, sc.url or "", sample_rate, buffer_seconds, backoff=(1.0, sc.reconnect_max_s),
                            log=log)
    raise ConfigError(f"sources.{sc.name}.kind: unknown kind {sc.kind!r}; use file, microphone or rtsp")


def load_bundles(cfg: RunConfig, loaded: dict[str, Bundle] | None = None) -> dict[str, Bundle]:
    """Every bundle the sources name (path -> bundle), each loaded once and checked: audio, calibrated
    unless each of its sources sets a threshold, and cutting the same windows as the others (one
    ring rate and hop for the whole daemon). `loaded` bundles whose files did not change are kept."""
    out: dict[str, Bundle] = {}
    first: tuple[str, str, tuple] | None = None
    for sc in cfg.sources:
        path = sc.bundle_path(cfg.daemon)
        key = "sources." + sc.name + ".bundle" if sc.bundle else "daemon.bundle"
        if sc.learn is not None and not Path(path).is_dir():
            continue  # still to be learned (sentinel.service.learner)
        if path not in out:
            bundle = load_bundle(path)
            old = (loaded or {}).get(path)
            out[path] = old if old is not None and old.bundle_id == bundle.bundle_id and \
                old.threshold == bundle.threshold else bundle
        try:
            bundle = out[path].for_machine(sc.machine)
        except SentinelError as e:
            raise SentinelError(f"sources.{sc.name}.machine: {e}") from None
        if bundle.modality != "audio":
            raise SentinelError(f"{key} {path}: an image model; the daemon listens to audio, "
                                "give it a bundle trained on recordings")
        if bundle.threshold is None and sc.threshold is None:
            raise SentinelError(f"bundle {path}: not calibrated; run `sentinel calibrate {path} --normal DIR` "
                                f"or give source {sc.name} a threshold")
        cut = (bundle.features.sample_rate, bundle.features.window_samples, bundle.scoring.hop_seconds)
        if first is None:
            first = (sc.name, path, cut)
        elif cut != first[2]:
            raise SentinelError(f"{key} {path}: its windows ({cut[1]} samples at {cut[0]} Hz every {cut[2]} s) "
                                f"differ from those of source {first[0]}'s bundle {first[1]}; one daemon scores one "
                                "window shape: run a second daemon for it")
    return out


class Daemon:
    def __init__(self, config: RunConfig, config_path: str | Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.log = get_logger("sentinel.daemon")
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.signal_received: int | None = None
        self.pipeline: Pipeline | None = None
        self.sources: dict[str, tuple[SourceConfig, Source]] = {}
        self.notifier = Notifier()
        self.metrics: Metrics | None = None
        self.mqtt = None
        self.journal: Journal | None = None
        self.dashboard = None
        self.pipeline_policy = RestartPolicy()
        self.source_policies: dict[str, RestartPolicy] = {}
        self.healthy_after_s = HEALTHY_AFTER_S
        self.arming: Arming | None = None
        self.retention: ClipRetention | None = None
        self.bundles: dict[str, Bundle] = {}
        """Every bundle in use, by path (sources[].bundle, or daemon.bundle)."""
        self._scorers: dict = {}
        self.learners: dict[str, Learner] = {}
        """Sources still learning their bundle (sources[].learn), by name: captured, not scored."""
        self.feedback: FeedbackQueue | None = None
        self._cut: tuple = ()
        """(features, hop_seconds) every source is cut with, fixed at start-up."""

    # -- signals: record only -------------------------------------------------------------------
    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.signal_received = signum
        self.stop_requested.set()

    def _on_hup(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.reload_requested.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    # -- building -------------------------------------------------------------------------------
    def _open_sources(self, cfg: RunConfig, sample_rate: int, keep: dict) -> dict:
        out = {}
        for sc in cfg.sources:
            if sc.name in keep and keep[sc.name][0].model_copy(update={"threshold": sc.threshold}) == sc:
                out[sc.name] = (sc, keep[sc.name][1])  # same capture (a threshold may change): no gap
                continue
            try:
                src = build_source(sc, sample_rate, cfg.daemon.buffer_seconds, self.log)
            except SentinelError as e:  # one bad source must not keep the others from running
                self.log.error("source unavailable", source=sc.name, error=str(e))
                continue
            out[sc.name] = (sc, src)
        return out

    def _thresholds(self, sources: dict) -> dict[str, float]:
        """The threshold of every source in `sources` that has its bundle (learning ones have none yet)."""
        d = self.config.daemon
        return {name: sc.threshold if sc.threshold is not None else
                self.bundles[sc.bundle_path(d)].for_machine(sc.machine).threshold
                for name, (sc, _) in sources.items() if sc.bundle_path(d) in self.bundles}

    def _monitored(self) -> dict:
        """The open sources that are scored: every one but those still learning."""
        return {n: v for n, v in self.sources.items() if n not in self.learners}

    def _cut_of(self, cfg: RunConfig, bundles: dict[str, Bundle]) -> tuple:
        """(features, hop_seconds) of the windows every source is cut into: the bundles' (load_bundles
        checked they agree), else those the learning sources will train with."""
        if bundles:
            b = next(iter(bundles.values()))
            return b.features, b.scoring.hop_seconds
        from sentinel.training.config import load_train_config

        learn = next(sc.learn for sc in cfg.sources if sc.learn is not None)
        tc = load_train_config(learn.train_config)
        return tc.features, tc.scoring.hop_seconds

    def _sync_learners(self, cfg: RunConfig) -> None:
        """A learner for every open learning source whose bundle is not there yet; none for the rest."""
        import dataclasses

        features, hop = self._cut
        for name in list(self.learners):
            sc_src = self.sources.get(name)
            learner = self.learners[name]
            if sc_src is None or sc_src[0].learn is None or learner.source is not sc_src[1]:
                learner.stop()
                learner.join(timeout=1.0)
                del self.learners[name]
        for name, (sc, src) in self.sources.items():
            if sc.learn is None or name in self.learners or sc.bundle_path(cfg.daemon) in self.bundles:
                continue
            learner = Learner(src, sc.learn, sc.learn_dir(cfg.daemon), sc.bundle_path(cfg.daemon),
                              features=dataclasses.asdict(features), hop_seconds=hop, log=self.log)
            learner.start()
            self.learners[name] = learner
            self.log.info("learning", source=name, minutes=sc.learn.minutes, folder=str(sc.learn_dir(cfg.daemon)))

    def _submit_feedback(self, event_id: str, action: str, by: str) -> None:
        """Queue a request from MQTT or the dashboard (ValueError on a malformed one)."""
        from sentinel.service.feedback import submit

        submit(self.config.daemon.state_dir, event_id, action, by)

    def _feedback_target(self, alert: dict):
        """(bundle path, held-out normal recordings, clip_pre_s) of the source an alert came from."""
        entry = self.sources.get(alert.get("source", ""))
        if entry is None or entry[0].name in self.learners:
            return None
        sc = entry[0]
        path = sc.bundle_path(self.config.daemon)
        if path not in self.bundles or sc.machine is not None:  # fleets are not taught feedback (yet)
            return None
        normal: list[str] = []
        if sc.learn is not None:  # a learned bundle: the audio it was calibrated on is at hand
            with contextlib.suppress(OSError, ValueError, KeyError):
                normal = json.loads((sc.learn_dir(self.config.daemon) / "job.done.json").read_text())["calibrate"]
        return str(Path(path).resolve()), normal, self.config.alerts.clip_pre_s

    def _apply_feedback(self) -> None:
        """Collect a finished feedback job: swap its bundle in, live, and journal what was done."""
        if self.feedback is None or self.pipeline is None:
            return
        done = self.feedback.poll(self._feedback_target)
        if done is None:
            return
        if not done.ok:
            self.feedback.finish(done.request_path, done.result)
            return
        path = done.bundle_path
        previous = Path(path + ".previous")
        try:
            if previous.exists():
                shutil.rmtree(previous)
            os.rename(path, previous)  # the bundle before this feedback stays beside it, by hand
            os.rename(done.out, path)
            bundle = load_bundle(path)
        except (OSError, SentinelError) as e:
            self.feedback.finish(done.request_path, {"error": f"bundle {path}: could not swap in ({e})"})
            return
        key = next((p for p in self.bundles if str(Path(p).resolve()) == path), path)
        self.bundles[key] = bundle
        self._scorers.pop(key, None)  # the new bundle's own scorer, not the one cached for that path
        models = self._models(self.config, self.bundles)
        monitored = self._monitored()
        self.pipeline.reconfigure({n: m for n, m in models.items() if n in monitored},
                                  [s for _, s in monitored.values()], self._thresholds(monitored))
        r, alert = done.result, done.alert
        record = {"kind": "feedback", "source": alert["source"], "event_id": done.request["event_id"],
                  "label": "normal", "undo": done.request["action"] == "undo", "by": done.request.get("by", "?"),
                  "threshold_before": r.get("threshold_before"), "threshold_after": r.get("threshold_after"),
                  "bundle_id_before": r.get("bundle_id_before"), "bundle_id": bundle.bundle_id,
                  "accepted_windows": r.get("accepted_windows"), "time": time.time()}
        self.pipeline.emit(f"feedback.{alert['source']}", record, True)
        if self.dashboard is not None:
            self.dashboard.state.set_thresholds(self._thresholds(monitored))
        self.feedback.finish(done.request_path, record)
        self.log.info("feedback applied", **{k: record[k] for k in ("source", "event_id", "undo", "threshold_before",
                                                                    "threshold_after", "bundle_id")})

    def _adopt_learned(self) -> None:
        """Switch every source whose learner finished to monitoring with its new bundle, no restart."""
        assert self.pipeline is not None
        done = [n for n, lr in self.learners.items() if lr.state == "ready"]
        if not done:
            return
        cfg = self.config
        for name in done:
            learner = self.learners.pop(name)
            learner.join(timeout=1.0)
            sc = self.sources[name][0]
            path = sc.bundle_path(cfg.daemon)
            try:
                bundle = load_bundle(path)
                cut = (bundle.features.sample_rate, bundle.features.window_samples, bundle.scoring.hop_seconds)
                if cut != (self.pipeline.sr, self.pipeline.window, self.pipeline.settings.hop_seconds):
                    raise SentinelError(f"bundle {path}: learned with other windows than the daemon cuts")
            except SentinelError as e:
                self.log.error("learned bundle refused; the source stays unscored", source=name,
                               error=str(e).splitlines()[0])
                continue
            self.bundles[path] = bundle
            self.log.info("learned: monitoring", source=name, bundle_id=bundle.bundle_id,
                          threshold=round(bundle.threshold or 0.0, 4))
        models = self._models(cfg, self.bundles)
        monitored = self._monitored()
        self.pipeline.reconfigure({n: m for n, m in models.items() if n in monitored},
                                  [s for _, s in monitored.values()], self._thresholds(monitored),
                                  learners=dict(self.learners), from_now=frozenset(done))
        if self.dashboard is not None:
            self.dashboard.state.set_thresholds(self._thresholds(monitored))

    def _models(self, cfg: RunConfig, bundles: dict[str, Bundle]) -> dict[str, SourceModel]:
        """Each source's scorer (one per bundle, reused while the bundle is unchanged) and bundle id."""
        device = resolve_device(cfg.device)
        # a fleet's scorer is any one machine's: each source gets its machine's view of it
        scorers = {path: self._scorers[path] if path in self._scorers and self.bundles.get(path) is b
                   else b.for_machine(b.machines[0] if b.machines else None).scorer(device)
                   for path, b in bundles.items()}
        self._scorers = scorers
        out = {}
        for sc in cfg.sources:
            if sc.bundle_path(cfg.daemon) not in bundles:  # still learning
                continue
            root = bundles[sc.bundle_path(cfg.daemon)]
            bundle = root.for_machine(sc.machine)
            scorer = scorers[sc.bundle_path(cfg.daemon)]
            if sc.machine is not None:
                scorer = scorer.view(root.machine_id(sc.machine))
            quieter, floor = bundle.post.level_bounds() or (None, None)
            if sc.min_level_db is not None:
                floor, quieter = sc.min_level_db, max(quieter or sc.min_level_db, sc.min_level_db)
            out[sc.name] = SourceModel(scorer, bundle.bundle_id, floor, quieter, sc.stopped_after_s)
        return out

    def _status_line(self) -> str:
        if self.pipeline is None:
            return "starting"
        parts = []
        for tr in self.pipeline.tracks:
            score = "-" if tr.last_score is None else f"{tr.last_score:.2f}"
            state = "up" if tr.source.connected else "down"
            parts.append(f"{tr.source.source_name} {state} last {score}")
        for name, lr in self.learners.items():
            parts.append(f"{name} {lr.state} {lr.progress:.0%}")
        return "; ".join(parts)

    def healthy(self) -> bool:
        """The inference loop is alive and beating, and some source delivered audio recently."""
        p = self.pipeline
        if p is None or self.pipeline_policy.exhausted or not p.is_alive() or time.monotonic() - p.last_beat > 10:
            return False
        now = time.monotonic()
        return any(s.last_audio_at is not None and now - s.last_audio_at < STALE_AUDIO_S or s.finished
                   for _, s in self.sources.values())

    # -- reload ---------------------------------------------------------------------------------
    def reload(self) -> None:
        assert self.pipeline is not None
        self.notifier.reloading()
        try:
            cfg = load_config(self.config_path)
            bundles = load_bundles(cfg, self.bundles)
            for some in bundles.values():
                if (some.features.sample_rate, some.features.window_samples, some.scoring.hop_seconds) != (
                        self.pipeline.sr, self.pipeline.window, self.pipeline.settings.hop_seconds):
                    raise ConfigError("bundle: the new bundles cut another window, hop or sample rate; restart "
                                      "instead")
            if cfg.alerts != self.config.alerts:
                self.log.warning("alerts settings take effect on restart only; the socket and journal stay")
        except SentinelError as e:
            self.log.error("reload rejected; the running config stays", error=str(e).splitlines()[0])
            self.notifier.ready(self._status_line())
            return
        models = self._models(cfg, bundles)
        self.bundles, self.config = bundles, cfg
        new = self._open_sources(cfg, self.pipeline.sr, self.sources)
        for src in (s for n, (_, s) in new.items() if self.sources.get(n, (None, None))[1] is not s):
            src.start()
        old, self.sources = self.sources, new
        self._sync_learners(cfg)
        monitored = self._monitored()
        models = {n: m for n, m in models.items() if n in monitored}
        self.pipeline.reconfigure(models, [s for _, s in monitored.values()], self._thresholds(monitored),
                                  learners=dict(self.learners))
        for name, (_, src) in old.items():
            if new.get(name, (None, None))[1] is not src:
                src.stop()
        if self.dashboard is not None:
            self.dashboard.state.set_thresholds(self._thresholds(monitored))
        self.log.info("reloaded", sources=list(new), bundles={p: b.bundle_id for p, b in bundles.items()})
        self.notifier.ready(self._status_line())

    # -- main -----------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.config
        bundles = load_bundles(cfg)
        models = self._models(cfg, bundles)
        self.bundles = bundles
        self._cut = self._cut_of(cfg, bundles)  # every bundle cuts the same windows (load_bundles checked)
        features, hop = self._cut
        journal = self.journal = Journal(cfg.alerts.journal, log=self.log,
                                         max_bytes=int(cfg.alerts.journal_max_mb * 1e6), keep=cfg.alerts.journal_keep)
        closers = [journal.close, self.notifier.close]
        try:
            a = cfg.alerts
            curve_secret = credential_path(a.curve_secret_key, "alerts.curve_secret_key")
            publisher = Publisher(a.endpoint, curve_secret=curve_secret,
                                  curve_clients=a.curve_clients_dir, allow_insecure=a.allow_insecure)
            closers.append(publisher.close)
            metrics = None
            if cfg.metrics.enabled:
                metrics = Metrics()
                try:
                    metrics.serve(cfg.metrics.address, cfg.metrics.port)
                except OSError as e:
                    raise ConfigError(f"metrics.port {cfg.metrics.port}: cannot listen ({e.strerror}); "
                                      "pick a free port") from None
                closers.append(metrics.close)
            self.metrics = metrics
            self.sources = self._open_sources(cfg, features.sample_rate, {})
            if not self.sources:
                raise SentinelError("no source could be opened; see the errors above")

            arming = self.arming = Arming(a.arming_file)
            self.feedback = FeedbackQueue(cfg.daemon.state_dir, a.journal, log=self.log)
            closers.append(self.feedback.close)
            if a.clips_dir:
                self.retention = ClipRetention(a.clips_dir, a.clips_max_mb, a.clips_max_days, log=self.log)
                closers.append(self.retention.sweep)  # a last pass after the final clips are written
            mqtt_sink = None
            if a.mqtt.enabled:
                from sentinel.alerts.mqtt import MqttSink  # paho only where MQTT is asked for

                mqtt_sink = MqttSink(a.mqtt, a.journal, log=self.log, version=__version__, arming=arming,
                                     feedback=self._submit_feedback)
                mqtt_sink.start()
                closers.append(mqtt_sink.close)
            self.mqtt = mqtt_sink

            board = self._dashboard(cfg, next(iter(bundles.values()), None))
            if board is not None:
                closers.append(board.close)
            publish_scores = a.publish_scores
            notifiers = self._notifiers(cfg, board)
            closers += [n.close for n in notifiers]

            def sink(topic: str, record: dict, durable: bool) -> None:
                if durable:
                    journal.append({"topic": topic, **record})
                if board is not None:  # a lock and an append: no browser ever waits in here
                    board.state.record(topic, record)
                if not publish_scores and topic.startswith("score."):
                    return
                publisher.publish(topic, record)
                if durable:  # never blocks: each notification rule reads the journal on its own thread
                    for n in notifiers:
                        n.wake()
                if mqtt_sink is not None:  # never blocks: the MQTT thread reads the journal itself
                    if durable:
                        mqtt_sink.wake()
                    else:
                        mqtt_sink.offer(topic, record)

            a, d = cfg.alerts, cfg.daemon
            settings = PipelineSettings(
                hop_seconds=hop, max_batch=d.max_batch, max_wait_ms=d.max_wait_ms,
                debounce_k=d.debounce_k, debounce_n=d.debounce_n, cooldown_s=d.cooldown_s,
                clips_dir=a.clips_dir, clip_pre_s=a.clip_pre_s, clip_post_s=a.clip_post_s,
                status_interval_s=a.status_interval_s, emit_scores=publish_scores or board is not None,
                armed=arming.is_armed,
            )
            self._pipeline_args = (settings, sink, self.log, metrics, (features.sample_rate, features.window_samples))
            for _, s in self.sources.values():
                s.start()
            self._sync_learners(cfg)
            monitored = self._monitored()
            self.pipeline = Pipeline({n: m for n, m in models.items() if n in monitored},
                                     [s for _, s in monitored.values()], self._thresholds(monitored),
                                     *self._pipeline_args, learners=dict(self.learners))
            self.pipeline.start()
            self.log.info("running", sources=list(self.sources), bundles={p: b.bundle_id for p, b in bundles.items()},
                          endpoint=a.endpoint)
            self._main_loop()
            return 0
        finally:
            self.notifier.stopping()
            self._shutdown()
            for close in reversed(closers):
                close()

    def _notifiers(self, cfg: RunConfig, board) -> list:
        """One running sink per alerts.notify rule (none: Apprise is not even imported)."""
        if not cfg.alerts.notify:
            return []
        from sentinel.alerts.notifications import NotificationSink

        url = board.url if board is not None else None
        out = []
        for i, rule in enumerate(cfg.alerts.notify):
            n = NotificationSink(rule, rule.name or str(i), cfg.alerts.journal, dashboard_url=url,
                                 clip_wait_s=cfg.alerts.clip_post_s + 3.0, log=self.log)
            n.start()
            out.append(n)
        return out

    def _dashboard(self, cfg: RunConfig, bundle: Bundle | None):
        """The web dashboard, serving already; None when off or its port cannot be had (logged: the
        daemon's job is listening, so a taken port costs the page, not the monitoring)."""
        if not cfg.web.enabled:
            return None
        if bundle is None:  # every source is still learning: the page says so per source
            spec, hop = self._cut
            info = {"bundles": "none yet: learning", "sample_rate": spec.sample_rate, "window_s": spec.window_seconds,
                    "hop_s": hop}
            return self._serve_dashboard(cfg, info, spec, hop)
        spec, cal = bundle.features, bundle.calibration
        info = {"bundle": bundle.bundle_id, "bundle_path": next(iter(self.bundles)),
                "threshold": bundle.threshold if bundle.threshold is not None else "per source",
                "calibration": f"{cal.method} {cal.target:g} ({cal.n_files} files, {cal.n_windows} windows)"
                if cal else "none", "sample_rate": spec.sample_rate,
                "window_s": spec.window_seconds, "hop_s": bundle.scoring.hop_seconds,
                "trained_steps": bundle.training.get("steps", "?"),
                "device": str(getattr(next(iter(self._scorers.values())), "device", "cpu"))}
        if len(self.bundles) > 1:  # a bundle per source: each source's card names its own (status.bundle_id)
            info = {k: v for k, v in info.items() if k not in ("bundle", "bundle_path", "threshold", "calibration",
                                                               "trained_steps")}
            info["bundles"] = "; ".join(f"{b.bundle_id} {p}" for p, b in self.bundles.items())
        return self._serve_dashboard(cfg, info, spec, bundle.scoring.hop_seconds)

    def _serve_dashboard(self, cfg: RunConfig, info: dict, spec, hop: float):
        from sentinel.web.server import DashboardServer  # aiohttp only where the dashboard is on
        from sentinel.web.state import DashboardState

        state = DashboardState(cfg.web.history_minutes * 60, hop, info)
        state.set_thresholds(self._thresholds(self.sources))
        state.load_alerts(cfg.alerts.journal)
        board = DashboardServer(cfg.web, state, clips_dir=cfg.alerts.clips_dir, audio_tail=self._audio_tail,
                                features=spec, clip_pre_s=cfg.alerts.clip_pre_s, log=self.log,
                                feedback=self._submit_feedback)
        try:
            board.serve()
        except OSError as e:
            self.log.error(f"web.port {cfg.web.port}: cannot listen ({e.strerror}); dashboard off, monitoring goes "
                           "on (pick a free port)")
            return None
        self.log.info("dashboard", url=board.url)
        self.dashboard = board
        return board

    def _audio_tail(self, source: str, seconds: float):
        entry = self.sources.get(source)
        if entry is None:
            return None
        return entry[1].ring.tail(int(seconds * entry[1].sample_rate))

    def _main_loop(self) -> None:
        assert self.pipeline is not None
        ready = False
        last_ping = last_status = last_sweep = 0.0
        while not self.stop_requested.wait(0.1):
            self._supervise()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            self._adopt_learned()
            self._apply_feedback()
            now = time.monotonic()
            if not ready and self.pipeline.batches > 0:  # bundle loaded and a first window scored
                self.notifier.ready(self._status_line())
                ready = True
            if ready and now - last_status > 5:
                self.notifier.status(self._status_line())
                last_status = now
                if self.journal is not None and self.journal.backlog:  # the disk may have room again
                    self.journal.flush()
            if self.retention is not None and now - last_sweep >= RETENTION_EVERY_S:
                self.retention.sweep()
                last_sweep = now
            if self.metrics is not None:
                self._update_gauges()
            interval = self.notifier.watchdog_interval
            if interval and now - last_ping >= interval and self.healthy():
                self.notifier.watchdog()
                last_ping = now
            if self.config.daemon.exit_when_done and self.pipeline.idle():
                break

    def _supervise(self) -> None:
        """Restart a dead inference loop or source with back-off; give up past the rate limit."""
        p = self.pipeline
        assert p is not None
        if not p.is_alive() and not self.stop_requested.is_set():
            self.pipeline_policy.failed()
            if self.pipeline_policy.exhausted:
                if self.notifier.watchdog_interval is None:  # nobody to restart us: exit non-zero
                    raise SentinelError(f"inference loop keeps failing ({p.error}); giving up")
            elif self.pipeline_policy.due():
                self.log.error("inference loop died; restarting", error=p.error)
                fresh = Pipeline(p.models, [tr.source for tr in p.tracks], p.thresholds(), *self._pipeline_args,
                                 learners=dict(self.learners))
                fresh.resume_from(p)
                self.pipeline = fresh
                fresh.start()
        else:
            self.pipeline_policy.healthy_for(self.healthy_after_s)
        for name, (sc, src) in list(self.sources.items()):
            policy = self.source_policies.setdefault(name, RestartPolicy())
            if src.is_alive() or src.finished or self.stop_requested.is_set():
                policy.healthy_for(self.healthy_after_s)  # a flaky source that recovered waits 1 s again, not 60
                continue
            policy.failed()
            if policy.due():
                self.log.error("source died; restarting", source=name, error=src.error)
                try:
                    fresh_src = build_source(sc, src.sample_rate, self.config.daemon.buffer_seconds, self.log)
                except SentinelError as e:
                    self.log.error("source unavailable", source=name, error=str(e))
                    continue
                fresh_src.start()
                self.sources[name] = (sc, fresh_src)
                if name in self.learners:
                    self.learners[name].replace_source(fresh_src)
                    continue
                cur = self.pipeline  # same name, new thread and ring: thresholds are unchanged
                cur.reconfigure(cur.models, [s for _, s in self._monitored().values()], cur.thresholds())

    def _update_gauges(self) -> None:
        assert self.metrics is not None and self.pipeline is not None
        m = self.metrics
        for tr in self.pipeline.tracks:
            name = tr.source.source_name
            m.connected.labels(name).set(1 if tr.source.connected else 0)
            m.reconnects.labels(name).set(tr.source.reconnects)
            m.dropped.labels(name).set(tr.dropped)
            m.audio_lost.labels(name).set(self.pipeline.audio_lost_s(tr))
            m.threshold.labels(name).set(tr.decider.threshold)
        if self.retention is not None:
            m.clips_bytes.set(self.retention.bytes_used)
            m.clips_removed.set(self.retention.removed_total)
        if self.journal is not None:
            m.journal_errors.set(self.journal.write_errors)
            m.journal_backlog.set(len(self.journal.backlog))

    def _shutdown(self) -> None:
        t0 = time.monotonic()
        for lr in self.learners.values():  # each keeps what it recorded and stops its training child
            lr.stop()
        for _, s in self.sources.values():
            s.stop()
        for lr in self.learners.values():
            lr.join(timeout=max(0.0, t0 + 0.9 - time.monotonic()))
        for _, s in self.sources.values():  # one shared second: a source blocked on the network is a daemon thread
            if s.is_alive():
                s.join(timeout=max(0.0, t0 + 1.0 - time.monotonic()))
        if self.pipeline is not None and self.pipeline.is_alive():
            self.pipeline.stop_event.set()
            self.pipeline.join(timeout=max(0.1, 1.8 - (time.monotonic() - t0)))
        self.log.info("stopped", seconds=round(time.monotonic() - t0, 3),
                      signal=signal.Signals(self.signal_received).name if self.signal_received else None)
