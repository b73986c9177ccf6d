"""Typed configuration: YAML -> validated models, once at start-up. Unknown keys are refused.

Each section is the plain dataclass that its part takes (FeatureSpec, UNetConfig, ...), so a
key's default, doc line and bounds live in exactly one place: beside the code that uses it.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.diffusion.unet import UNetConfig
from sentinel.errors import ConfigError
from sentinel.features.spec import FeatureSpec
from sentinel.scoring.scorer import ScoringConfig
from sentinel.training.trainer import TrainingConfig


class SentinelConfig(BaseModel):
    """The whole configuration file."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    device: Annotated[str, Field(description="auto (GPU if present), cpu, or cuda[:N].")] = "auto"
    features: Annotated[FeatureSpec, Field(description="Audio -> model input.")] = FeatureSpec()
    model: Annotated[UNetConfig, Field(description="Denoiser network shape.")] = UNetConfig()
    scheduler: Annotated[SchedulerConfig, Field(description="Noise schedule.")] = SchedulerConfig()
    scoring: Annotated[ScoringConfig, Field(description="Scoring and combination.")] = ScoringConfig()
    training: Annotated[TrainingConfig, Field(description="Optimisation.")] = TrainingConfig()


def _format_errors(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        shown = "" if isinstance(value, dict) else f" = {value!r}"
        lines.append(f"{source}: {key}{shown}: {e['msg']}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "config") -> SentinelConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(data).__name__}")
    try:
        return SentinelConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(source, e)) from None


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
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_config(data, str(path))


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
        if isinstance(value, str):
            lines += [f"{name}: {_yaml_value(value)}", ""]
            continue
        lines.append(f"{name}:")
        for key, doc in _field_docs(type(value)).items():
            lines.append(f"  # {doc}")
            lines.append(f"  {key}: {_yaml_value(getattr(value, key))}")
        lines.append("")
    return "\n".join(lines)
