"""Typed configuration: YAML -> validated models, once at start-up. Unknown keys are refused.

Each section is the plain dataclass that its part takes (FeatureSpec, UNetConfig, ...), so a
key's default, doc line and bounds live in exactly one place: beside the code that uses it.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sentinel.alerts.settings import MqttConfig
from sentinel.baseline.autoencoder import AutoencoderConfig
from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.diffusion.unet import UNetConfig
from sentinel.errors import ConfigError
from sentinel.features.image_spec import ImageSpec
from sentinel.features.spec import FeatureSpec
from sentinel.scoring.patch_memory import PatchMapConfig
from sentinel.scoring.scorer import ScoringConfig
from sentinel.training.trainer import TrainingConfig
from sentinel.web.settings import WebConfig


class SourceConfig(BaseModel):
    """One audio source of the daemon."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Unique name; used in topics.")]
    kind: Annotated[Literal["file", "microphone", "rtsp"], Field(description="file, microphone or rtsp.")]
    path: Annotated[str | None, Field(description="file: the recording to replay.")] = None
    realtime: Annotated[bool, Field(description="file: replay at real-time pace (else full speed).")] = True
    loop: Annotated[bool, Field(description="file: start again at the end.")] = False
    device: Annotated[str | int | None, Field(description="microphone: device name or index.")] = None
    url: Annotated[str | None, Field(description="rtsp: stream URL (rtsp://, rtsps://, http://, file).")] = None
    threshold: Annotated[float | None, Field(description="Override the bundle's calibrated threshold.")] = None
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
        return self


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle: Annotated[str | None, Field(description="Model bundle folder; null = the built-in demo bundle.")] = None
    hop_seconds: Annotated[float, Field(gt=0, description="Hop between scored windows, s.")] = 0.5
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
    clips_dir: Annotated[str | None, Field(description="Folder for event WAV clips; null = no clips.")] = (
        "sentinel-state/clips"
    )
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


class MetricsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: Annotated[bool, Field(description="Serve Prometheus metrics over HTTP.")] = False
    address: Annotated[str, Field(description="Address to listen on (loopback unless you mean it).")] = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535, description="TCP port of the metrics endpoint.")] = 9464


class SentinelConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    device: Annotated[str, Field(description="auto (GPU if present), cpu, or cuda[:N].")] = "auto"
    features: Annotated[FeatureSpec, Field(description="Audio -> model input.")] = FeatureSpec()
    image: Annotated[ImageSpec, Field(description="Image -> model input (sentinel train --modality image).")] = (
        ImageSpec()
    )
    image_map: Annotated[
        PatchMapConfig, Field(description="Image anomaly maps: patch memory over denoiser features and texture energy.")
    ] = PatchMapConfig()
    model: Annotated[UNetConfig, Field(description="Denoiser network shape.")] = UNetConfig()
    scheduler: Annotated[SchedulerConfig, Field(description="Noise schedule.")] = SchedulerConfig()
    scoring: Annotated[ScoringConfig, Field(description="Scoring and combination.")] = ScoringConfig()
    training: Annotated[TrainingConfig, Field(description="Optimisation.")] = TrainingConfig()
    autoencoder: Annotated[
        AutoencoderConfig, Field(description="DCASE 2020 autoencoder baseline (sentinel train --model autoencoder).")
    ] = AutoencoderConfig()
    daemon: Annotated[DaemonConfig, Field(description="The streaming daemon (sentinel run).")] = DaemonConfig()
    alerts: Annotated[AlertsConfig, Field(description="Where alerts go.")] = AlertsConfig()
    metrics: Annotated[MetricsConfig, Field(description="Prometheus endpoint (off by default).")] = MetricsConfig()
    web: Annotated[WebConfig, Field(description="Live dashboard of the daemon (loopback by default).")] = WebConfig()
    sources: Annotated[
        list[SourceConfig],
        Field(description="Audio sources of the daemon; empty = the built-in demo file source."),
    ] = []

    @model_validator(mode="after")
    def _unique_sources(self) -> SentinelConfig:
        names = [s.name for s in self.sources]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"source names must be unique: {', '.join(sorted(dup))}")
        return self


def _yaml_lines(text: str) -> dict[tuple, int]:
    """Key path -> 1-based line of its value in the YAML text (for error messages)."""
    lines: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                walk(v, (*path, k.value))
                lines[(*path, k.value)] = k.start_mark.line + 1  # the key's line, not its value's
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*path, i))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _format_errors(source: str, err: ValidationError, text: str | None = None) -> str:
    where = _yaml_lines(text) if text else {}
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        line = next((where[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in where), None)
        at = f":{line}" if line else ""
        lines.append(f"{source}{at}: {key}{shown}: {e['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config", text: str | None = None) -> SentinelConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return SentinelConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(source, e, text)) from None


def load_config(path: str | Path | None) -> SentinelConfig:
    """The config at `path`, or all defaults when None."""
    if path is None:
        return SentinelConfig()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror}); check the --config path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_config(data, str(path), text)


def _yaml_value(v: Any) -> str:
    if isinstance(v, tuple):
        v = list(v)
    return yaml.safe_dump(v, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def _field_docs(cls: type) -> dict[str, str]:
    """Field name -> description, for pydantic models and for our Annotated dataclasses."""
    if issubclass(cls, BaseModel):
        return {k: v.description or "" for k, v in cls.model_fields.items()}
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = {}
    for f in dataclasses.fields(cls):
        meta = getattr(hints[f.name], "__metadata__", ())
        docs[f.name] = next((m.description for m in meta if getattr(m, "description", None)), "")
    return docs


def _section_lines(value: Any, indent: str) -> list[str]:
    """One section's keys with their doc lines; a nested section (alerts.mqtt) indents further."""
    lines = []
    for key, doc in _field_docs(type(value)).items():
        lines.append(f"{indent}# {doc}")
        sub = getattr(value, key)
        if isinstance(sub, BaseModel):
            lines.append(f"{indent}{key}:")
            lines += _section_lines(sub, indent + "  ")
        else:
            lines.append(f"{indent}{key}: {_yaml_value(sub)}")
    return lines


def example_yaml() -> str:
    """The fully commented default config (configs/sentinel.yaml is this text; a test checks)."""
    lines = [
        "# Sentinel configuration. Every key is optional: shown here with its default.",
        "# Unknown keys are refused; an error names the key, the value and what is wrong.",
        "",
    ]
    defaults = SentinelConfig()
    for name, info in SentinelConfig.model_fields.items():
        value = getattr(defaults, name)
        lines.append(f"# {info.description}")
        if isinstance(value, (str, list)):
            lines += [f"{name}: {_yaml_value(value)}", ""]
            continue
        lines.append(f"{name}:")
        lines += _section_lines(value, "  ")
        lines.append("")
    lines += [
        "# A source per entry, for example:",
        "# sources:",
        "#   - {name: line1, kind: file, path: recordings/line1.wav, realtime: true, loop: true}",
        "#   - {name: bench, kind: microphone, device: default}",
        "#   - {name: gate, kind: rtsp, url: rtsp://127.0.0.1:8554/audio, threshold: 4.0}",
        "",
    ]
    return "\n".join(lines)
