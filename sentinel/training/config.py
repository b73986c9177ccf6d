"""The config of `sentinel train`: features, model, noise schedule, scoring recipe and
optimisation (all of which the bundle then carries), and the device. YAML -> validated models;
unknown keys are refused, and the daemon's keys are named as belonging to `sentinel run`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from sentinel import configfile
from sentinel.baseline.autoencoder import AutoencoderConfig
from sentinel.diffusion.schedulers import SchedulerConfig
from sentinel.diffusion.unet import UNetConfig
from sentinel.features.image_spec import ImageSpec
from sentinel.features.spec import FeatureSpec
from sentinel.scoring.config import ScoringConfig
from sentinel.scoring.patch_memory import PatchMapConfig
from sentinel.training.trainer import TrainingConfig

RUN_KEYS = ("daemon", "alerts", "metrics", "web", "sources")
"""Top-level keys of `sentinel run`'s config (sentinel.config)."""


class TrainConfig(BaseModel):
    """The config file of `sentinel train`."""

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
    scoring: Annotated[ScoringConfig, Field(description="Scoring and combination (saved in the bundle).")] = (
        ScoringConfig()
    )
    training: Annotated[TrainingConfig, Field(description="Optimisation.")] = TrainingConfig()
    autoencoder: Annotated[
        AutoencoderConfig, Field(description="DCASE 2020 autoencoder baseline (sentinel train --model autoencoder).")
    ] = AutoencoderConfig()


def parse_train_config(data: Any, source: str = "config", text: str | None = None) -> TrainConfig:
    elsewhere = {k: "a daemon setting: it goes in the config of `sentinel run --config`, not of `sentinel train`"
                 for k in RUN_KEYS}
    return configfile.parse(TrainConfig, data, source, text, elsewhere)


def load_train_config(path: str | Path | None) -> TrainConfig:
    """The training config at `path`, or all defaults when None."""
    if path is None:
        return TrainConfig()
    data, text = configfile.read(path)
    return parse_train_config(data, str(path), text)


def example_yaml() -> str:
    """The fully commented training config (configs/train.yaml is this text; a test checks)."""
    header = [
        "# Sentinel training configuration (sentinel train --config FILE). Every key is optional: shown",
        "# here with its default. Unknown keys are refused; an error names the key, the value and what",
        "# is wrong. The bundle that training writes carries all of it, so `sentinel run` needs none.",
    ]
    return configfile.example_yaml(TrainConfig(), header, [])
