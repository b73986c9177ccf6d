"""The daemon: builds the parts from the config in one place and stops them in reverse order.

Signal handlers only record the signal; the main loop acts on it.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from sentinel.alerts.journal import Journal
from sentinel.alerts.publisher import Publisher
from sentinel.bundle import load_bundle
from sentinel.capture.file import FileSource
from sentinel.capture.microphone import MicrophoneSource
from sentinel.capture.source import Source
from sentinel.capture.stream import StreamSource
from sentinel.config import SentinelConfig, SourceConfig
from sentinel.devices import resolve_device
from sentinel.errors import ConfigError, SentinelError
from sentinel.logs import get_logger
from sentinel.service.pipeline import Pipeline, PipelineSettings

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo_assets"


def demo_sources() -> list[SourceConfig]:
    return [SourceConfig(name="demo", kind="file", path=str(DEMO_DIR / "recording.flac"), realtime=True, loop=True)]


def build_source(sc: SourceConfig, sample_rate: int, buffer_seconds: float, log) -> Source:
    if sc.kind == "file":
        return FileSource(sc.name, sc.path or "", sample_rate, buffer_seconds, realtime=sc.realtime, loop=sc.loop,
                          log=log)
    if sc.kind == "microphone":
        return MicrophoneSource(sc.name, sc.device, sample_rate, buffer_seconds, log=log)
    if sc.kind == "rtsp":
        return StreamSource(sc.name, sc.url or "", sample_rate, buffer_seconds, log=log)
    raise ConfigError(f"sources.{sc.name}.kind: unknown kind {sc.kind!r}; use file, microphone or rtsp")


class Daemon:
    def __init__(self, config: SentinelConfig) -> None:
        self.config = config
        self.log = get_logger("sentinel.daemon")
        self.stop_requested = threading.Event()
        self.signal_received: int | None = None
        self.pipeline: Pipeline | None = None
        self.sources: list[Source] = []

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.signal_received = signum
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def run(self) -> int:
        cfg = self.config
        bundle_path = cfg.daemon.bundle or str(DEMO_DIR / "bundle")
        bundle = load_bundle(bundle_path)
        if bundle.threshold is None:
            raise SentinelError(f"bundle {bundle_path}: not calibrated; run `sentinel calibrate {bundle_path} "
                                "--normal DIR` or give every source a threshold")
        scorer = bundle.scorer(resolve_device(cfg.device))
        spec = bundle.features
        journal = Journal(cfg.alerts.journal)
        closers = [journal.close]
        try:
            publisher = Publisher(cfg.alerts.endpoint)
            closers.append(publisher.close)
            source_cfgs = cfg.sources or demo_sources()
            for sc in source_cfgs:
                try:
                    self.sources.append(build_source(sc, spec.sample_rate, cfg.daemon.buffer_seconds, self.log))
                except SentinelError as e:  # one bad source must not keep the others from running
                    self.log.error("source unavailable", source=sc.name, error=str(e))
            if not self.sources:
                raise SentinelError("no source could be opened; see the errors above")
            thresholds = {sc.name: sc.threshold if sc.threshold is not None else bundle.threshold
                          for sc in source_cfgs}

            def sink(topic: str, record: dict, durable: bool) -> None:
                if durable:
                    journal.append({"topic": topic, **record})
                publisher.publish(topic, record)

            a, d = cfg.alerts, cfg.daemon
            settings = PipelineSettings(
                hop_seconds=d.hop_seconds, max_batch=d.max_batch, max_wait_ms=d.max_wait_ms,
                debounce_k=d.debounce_k, debounce_n=d.debounce_n, cooldown_s=d.cooldown_s,
                clips_dir=a.clips_dir, clip_pre_s=a.clip_pre_s, clip_post_s=a.clip_post_s,
                status_interval_s=a.status_interval_s, publish_scores=a.publish_scores,
            )
            self.pipeline = Pipeline(scorer, self.sources, thresholds, settings, bundle.bundle_id, sink, self.log)
            for s in self.sources:
                s.start()
            self.pipeline.start()
            self.log.info("running", sources=[s.source_name for s in self.sources], bundle=bundle.bundle_id,
                          endpoint=a.endpoint, threshold=round(bundle.threshold, 4))
            while not self.stop_requested.wait(0.1):
                if self.pipeline.error or not self.pipeline.is_alive():
                    raise SentinelError(f"inference loop stopped: {self.pipeline.error}")
                if d.exit_when_done and self.pipeline.idle():
                    break
            return 0
        finally:
            self._shutdown()
            for close in reversed(closers):
                close()

    def _shutdown(self) -> None:
        t0 = time.monotonic()
        for s in self.sources:
            s.stop()
        for s in self.sources:  # one shared second: a source blocked on the network is a daemon thread
            s.join(timeout=max(0.0, t0 + 1.0 - time.monotonic()))
        if self.pipeline is not None and self.pipeline.is_alive():
            self.pipeline.stop_event.set()
            self.pipeline.join(timeout=max(0.1, 1.8 - (time.monotonic() - t0)))
        self.log.info("stopped", seconds=round(time.monotonic() - t0, 3),
                      signal=signal.Signals(self.signal_received).name if self.signal_received else None)
