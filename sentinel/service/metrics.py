"""Prometheus metrics on their own registry (no process globals), served over HTTP on loopback."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.windows = Counter("sentinel_windows_scored", "Windows scored", ["source"], registry=r)
        self.alerts = Counter("sentinel_alerts", "Alerts raised", ["source"], registry=r)
        self.last_score = Gauge("sentinel_last_score", "Score of the latest window", ["source"], registry=r)
        self.threshold = Gauge("sentinel_threshold", "Alert threshold in force", ["source"], registry=r)
        self.connected = Gauge("sentinel_source_connected", "1 while the source delivers audio", ["source"],
                               registry=r)
        self.reconnects = Gauge("sentinel_source_reconnects", "Reconnection attempts so far", ["source"], registry=r)
        self.dropped = Gauge("sentinel_dropped_samples", "Samples lost to ring-buffer overruns", ["source"],
                             registry=r)
        self.audio_lost = Gauge("sentinel_audio_lost_seconds", "Seconds of audio never scored: outages, stalls, "
                                "overruns", ["source"], registry=r)
        self.journal_errors = Gauge("sentinel_journal_write_errors", "Journal appends that failed (disk full...); "
                                    "each is retried", registry=r)
        self.journal_backlog = Gauge("sentinel_journal_backlog", "Alerts held in memory until the journal's disk "
                                     "takes them again", registry=r)
        self.clips_bytes = Gauge("sentinel_clips_bytes", "Bytes the clips folder holds", registry=r)
        self.clips_removed = Gauge("sentinel_clips_removed", "Clips removed by retention since start", registry=r)
        self.clip_errors = Gauge("sentinel_clip_write_errors", "Event clips that could not be written", registry=r)
        self.latency = Histogram("sentinel_inference_seconds", "Feature + scoring time of one batch", registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        self.batch = Histogram("sentinel_batch_size", "Windows per scored batch", registry=r,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self._server = None

    def serve(self, address: str, port: int) -> None:
        self._server, _ = start_http_server(port, addr=address, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
