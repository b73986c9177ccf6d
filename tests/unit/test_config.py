from pathlib import Path

import pytest

from sentinel.config import SentinelConfig, example_yaml, load_config
from sentinel.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_loads_and_documents_every_key():
    assert load_config(ROOT / "configs" / "sentinel.yaml") == SentinelConfig()
    # The shipped file is generated from the code's field docs: regenerate it when keys change.
    assert (ROOT / "configs" / "sentinel.yaml").read_text() == example_yaml() + "\n"


def test_demo_config_loads():
    assert load_config(ROOT / "configs" / "demo.yaml").model.base_channels == 16


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("scoring:\n  strenghts: [0.2]\n")
    with pytest.raises(ConfigError, match=r"c.yaml: scoring.strenghts = \[0.2\]: Unexpected keyword"):
        load_config(p)


def test_bad_value_names_key_and_value(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  steps: many\n")
    with pytest.raises(ConfigError, match="training.steps = 'many'"):
        load_config(p)


def test_broken_yaml_gives_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  steps: [1,\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
