"""The config of `sentinel run`: sources, daemon, alerts, metrics, web and device. YAML ->
validated models, once at start-up; unknown keys are refused.

Training, feature, model and scoring settings belong to `sentinel train`'s config
(sentinel.training.config) and to the bundle, which carries them: loading this config imports
no trainer. Each section is the model its part takes, so a key's default, doc line and bounds
live in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sentinel import configfile
from sentinel.alerts.settings import MqttConfig, NotifyRule
from sentinel.errors import ConfigError
from sentinel.web.settings import WebConfig

DEMO_DIR = Path(__file__).resolve().parent / "demo_assets"
TRAINING_KEYS = ("features", "image", "image_map", "model", "scheduler", "scoring", "training", "autoencoder")
"""Top-level keys of `sentinel train`'s config: a run config that has one gets a message saying so."""


class LearnConfig(BaseModel):
    """A source's learning phase: what the daemon records of it and how it trains its bundle."""

    model_config = ConfigDict(extra="forbid")

    minutes: Annotated[
        float, Field(gt=0, description="Minutes of the machine running to learn from (stretches where it was "
                     "off are left out and recorded again).")
    ]
    steps: Annotated[
        int | None, Field(ge=1, description="Training steps; null = training.steps of train_config (or its "
                          "default).")
    ] = None
    train_config: Annotated[
        str | None, Field(description="A `sentinel train --config` file for every other training setting "
                          "(features, model, scoring, ...); null = the defaults. Its features' sample rate and "
                          "window must match the daemon's other bundles.")
    ] = None
    segment_s: Annotated[float, Field(ge=1, description="Length of each recorded FLAC segment, s.")] = 10.0
    calibration_fraction: Annotated[
        float, Field(gt=0, lt=1, description="Share of the recorded audio (the latest) kept out of training "
                     "to calibrate the threshold on.")
    ] = 0.2
    false_alarms_per_hour: Annotated[
        float, Field(gt=0, description="Calibration target: false alarms per hour on the held-out audio.")
    ] = 1.0


class SourceConfig(BaseModel):
    """One audio source of the daemon."""

    def bundle_path(self, daemon: DaemonConfig) -> str:
        """The bundle this source is scored with: its own; else, for a learning source, the one it
        learns (<state_dir>/learn/<name>/bundle); else the daemon's (the config checked one is set)."""
        if self.bundle:
            return str(self.bundle)
        return str(self.learn_dir(daemon) / "bundle") if self.learn else str(daemon.bundle)

    def learn_dir(self, daemon: DaemonConfig) -> Path:
        """Where this source's learning phase keeps its recordings and training run."""
        return Path(daemon.state_dir) / "learn" / self.name

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Unique name; used in topics.")]
    kind: Annotated[Literal["file", "microphone", "rtsp"], Field(description="file, microphone or rtsp.")]
    path: Annotated[str | None, Field(description="file: the recording to replay.")] = None
    realtime: Annotated[bool, Field(description="file: replay at real-time pace (else full speed).")] = True
    loop: Annotated[bool, Field(description="file: start again at the end.")] = False
    device: Annotated[str | int | None, Field(description="microphone: device name or index.")] = None
    url: Annotated[str | None, Field(description="rtsp: stream URL (rtsp://, rtsps://, http://, file).")] = None
    bundle: Annotated[
        str | None, Field(description="Bundle folder this source is scored with; null = daemon.bundle. Sources "
                          "that share a bundle are scored in one batch.")
    ] = None
    machine: Annotated[
        str | None, Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Fleet bundles (sentinel train --data NAME=DIR "
                          "...): which of its machines this source hears; the fleet's sources are scored in one "
                          "batch, each against its own machine. null = a bundle of one machine.")
    ] = None
    threshold: Annotated[float | None, Field(description="Override the bundle's calibrated threshold.")] = None
    learn: Annotated[
        LearnConfig | None, Field(description="Learn this source where it runs: while its bundle does not exist "
                                  "yet, record {minutes} of it, train and calibrate a bundle in a background "
                                  "process, then monitor with it (no restart). null = no learning.")
    ] = None
    min_level_db: Annotated[
        float | None, Field(description="Window level (mean log-mel, dB) below which the machine counts as off; "
                            "null = from the bundle: well below any level its normal audio had.")
    ] = None
    stopped_after_s: Annotated[
        float, Field(gt=0, description="Quieter than min_level_db for this long is `stopped`: no alerts until it "
                     "sounds again, and not for this long after (its run-up); a shorter dropout is still "
                     "judged, this much later.")
    ] = 5.0
    reconnect_max_s: Annotated[
        float, Field(gt=0, le=600, description="rtsp, microphone: longest wait between reconnection attempts, s "
                     "(the wait starts at 1 s and doubles up to this; a server that comes back is heard again "
                     "within about this long).")
    ] = 5.0

    @model_validator(mode="after")
    def _needs(self) -> SourceConfig:
        need = {"file": "path", "rtsp": "url"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"a {self.kind} source needs '{need}'")
        if self.machine is not None and self.learn is not None:
            raise ValueError("'machine' names a machine of a fleet bundle, but a learning source learns a bundle of "
                             "its own; drop one of them")
        return self


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _one_hop(cls, data: Any) -> Any:
        if isinstance(data, dict) and "hop_seconds" in data:
            raise ValueError("hop_seconds: the daemon hops by its bundle's scoring.hop_seconds (the hop "
                             "`sentinel score` uses too); remove this key")
        return data

    bundle: Annotated[
        str | None, Field(description="Model bundle folder (sentinel train --out) of every source without a "
                          "bundle of its own; its scoring.hop_seconds is the hop between scored windows.")
    ] = None
    state_dir: Annotated[
        str, Field(description="Folder of what the daemon learns and is told: learning recordings and bundles "
                   "(learn/<source>/), feedback requests and accepted clips (feedback/).")
    ] = "sentinel-state"
    buffer_seconds: Annotated[float, Field(gt=0, description="Ring buffer per source, s.")] = 30.0
    max_batch: Annotated[int, Field(ge=1, description="Most windows scored in one batch.")] = 32
    max_wait_ms: Annotated[float, Field(ge=0, description="Wait this long for a fuller batch, ms.")] = 20.0
    debounce_k: Annotated[int, Field(ge=1, description="Alert when k of the last n windows are anomalous.")] = 1
    debounce_n: Annotated[int, Field(ge=1, description="The n of debounce_k.")] = 1
    cooldown_s: Annotated[float, Field(ge=0, description="Quiet time after an alert on a source, s.")] = 10.0
    exit_when_done: Annotated[
        bool, Field(description="Stop once every source has ended (files played once); for batch replays.")
    ] = False


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: Annotated[str, Field(description="ZeroMQ PUB endpoint to bind.")] = "tcp://127.0.0.1:5556"
    journal: Annotated[str, Field(description="JSONL alert journal, written before publishing.")] = (
        "sentinel-state/alerts.jsonl"
    )
    journal_max_mb: Annotated[
        float, Field(gt=0, description="Past this size the journal is rotated (<journal>.1, .2, ...); readers "
                     "follow across, MB.")
    ] = 256.0
    journal_keep: Annotated[
        int, Field(ge=1, description="Rotated journals kept; the oldest past this is removed.")
    ] = 4
    clips_dir: Annotated[str | None, Field(description="Folder for event WAV clips; null = no clips.")] = (
        "sentinel-state/clips"
    )
    clips_max_mb: Annotated[
        float, Field(gt=0, description="Clips folder size kept; past it the oldest clips are removed, MB.")
    ] = 1024.0
    clips_max_days: Annotated[float, Field(gt=0, description="Clips older than this are removed, days.")] = 30.0
    clip_pre_s: Annotated[float, Field(ge=0, description="Audio kept before an event, s.")] = 2.0
    clip_post_s: Annotated[float, Field(ge=0, description="Audio kept after an event, s.")] = 2.0
    status_interval_s: Annotated[float, Field(gt=0, description="Heartbeat on status.<source> every s.")] = 5.0
    publish_scores: Annotated[bool, Field(description="Also publish every window on score.<source>.")] = False
    curve_secret_key: Annotated[
        str | None,
        Field(description="CURVE server certificate with secret key (zmq format, from `sentinel keygen`), or "
              "credential:NAME for a systemd credential; required off loopback."),
    ] = None
    curve_clients_dir: Annotated[
        str | None, Field(description="Folder of allowed client public certificates; null = any client with CURVE.")
    ] = None
    allow_insecure: Annotated[
        bool, Field(description="Allow a plain-text publisher on a non-loopback address (trusted networks only).")
    ] = False
    mqtt: Annotated[MqttConfig, Field(description="MQTT broker sink (and Home Assistant discovery).")] = MqttConfig()
    notify: Annotated[
        list[NotifyRule], Field(description="Notifications to people through Apprise, sent from the journal: a "
                                "list of {url, sources, min_score, quiet_hours, max_per_hour, attach_clip}.")
    ] = []
    arming_file: Annotated[
        str, Field(description="Which sources are disarmed, and until when (sentinel arm / disarm, MQTT, Home "
                   "Assistant); kept across restarts.")
    ] = "sentinel-state/arming.json"

    @model_validator(mode="after")
    def _unique_rule_names(self) -> AlertsConfig:
        names = [r.name or str(i) for i, r in enumerate(self.notify)]
        if len(set(names)) != len(names):
            raise ValueError("notify: two rules have the same name; give each its own (it names its cursor)")
        return self


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(description="Serve Prometheus metrics over HTTP.")] = False
    address: Annotated[str, Field(description="Address to listen on (loopback unless you mean it).")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, description="TCP port of the metrics endpoint.")] = 9464


class RunConfig(BaseModel):
    """The config file of `sentinel run`."""

    model_config = ConfigDict(extra="forbid")

    device: Annotated[str, Field(description="auto (GPU if present), cpu, or cuda[:N].")] = "auto"
    daemon: Annotated[DaemonConfig, Field(description="The streaming daemon.")] = DaemonConfig()
    alerts: Annotated[AlertsConfig, Field(description="Where alerts go.")] = AlertsConfig()
    metrics: Annotated[MetricsConfig, Field(description="Prometheus endpoint (off by default).")] = MetricsConfig()
    web: Annotated[WebConfig, Field(description="Live dashboard of the daemon (loopback by default).")] = WebConfig()
    sources: Annotated[
        list[SourceConfig],
        Field(description="Audio sources to monitor (at least one; `sentinel run` without --config runs the "
              "built-in demo source)."),
    ] = []

    @model_validator(mode="after")
    def _unique_sources(self) -> RunConfig:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"source names must be unique: {', '.join(sorted(dup))}")
        return self


def demo_config() -> RunConfig:
    """What `sentinel run` runs without --config: the built-in recording replayed in real time, in a
    loop, through the built-in bundle."""
    return RunConfig(
        daemon=DaemonConfig(bundle=str(DEMO_DIR / "bundle")),
        sources=[SourceConfig(name="demo", kind="file", path=str(DEMO_DIR / "recording.flac"), realtime=True,
                              loop=True)],
    )


def parse_config(data: Any, source: str = "config", text: str | None = None) -> RunConfig:
    elsewhere = {k: "a training setting: `sentinel run` takes it from the bundle; move it to the config you "
                    "give `sentinel train`" for k in TRAINING_KEYS}
    cfg = configfile.parse(RunConfig, data, source, text, elsewhere)
    if not cfg.sources:
        raise ConfigError(f"{source}: sources: none configured; add at least one (the file has commented "
                          "examples), or run `sentinel run` without --config for the built-in demo")
    if cfg.daemon.bundle is None:
        missing = [s.name for s in cfg.sources if s.bundle is None and s.learn is None]
        if missing:
            raise ConfigError(f"{source}: daemon.bundle: not set, and source {missing[0]} has no bundle of its own; "
                              "give the bundle folder it is scored with (sentinel train --out DIR, then sentinel "
                              "calibrate DIR)")
    return cfg


def load_config(path: str | Path | None) -> RunConfig:
    """The config at `path`; the built-in demo's when None."""
    if path is None:
        return demo_config()
    data, text = configfile.read(path)
    return parse_config(data, str(path), text)


def example_yaml() -> str:
    """The installed example config (configs/sentinel.yaml is this text; a test checks)."""
    header = [
        "# Sentinel daemon configuration (sentinel run --config FILE). Every key but sources and",
        "# daemon.bundle is optional: shown here with its default. Unknown keys are refused; an error",
        "# names the key, the value and what is wrong. `sentinel check-config FILE` checks a file.",
        "# Training settings (features, model, scoring, training) go to `sentinel train --config`",
        "# (configs/train.yaml); the bundle carries them.",
    ]
    footer = [
        "# The sources to monitor: at least one, or the daemon refuses to start. For example:",
        "# sources:",
        "#   - {name: line1, kind: microphone, device: default}",
        "#   - {name: gate, kind: rtsp, url: rtsp://127.0.0.1:8554/audio, threshold: 4.0}",
        "#   - {name: fan, kind: microphone, device: 2, bundle: /var/lib/sentinel/bundles/fan}  # its own bundle",
        "#   - {name: replay, kind: file, path: recordings/line1.wav, realtime: true, loop: true}",
        "#   - {name: pump, kind: rtsp, url: rtsp://127.0.0.1:8554/pump, learn: {minutes: 30}}  # learns on site",
        "#   # two machines of one fleet bundle (sentinel train --data pump1=DIR --data pump2=DIR): one batch",
        "#   - {name: p1, kind: microphone, device: 3, bundle: /var/lib/sentinel/bundles/pumps, machine: pump1}",
        "#   - {name: p2, kind: microphone, device: 4, bundle: /var/lib/sentinel/bundles/pumps, machine: pump2}",
    ]
    return configfile.example_yaml(RunConfig(), header, footer, skip=("sources",))
