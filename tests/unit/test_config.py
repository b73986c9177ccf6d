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
    with pytest.raises(ConfigError, match=r"c.yaml:2: scoring.strenghts = \[0.2\]: Unexpected keyword"):
        load_config(p)


def test_bad_value_names_key_and_value(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  steps: many\n")
    with pytest.raises(ConfigError, match="c.yaml:2: training.steps = 'many'"):
        load_config(p)


def test_broken_yaml_gives_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  steps: [1,\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: not valid YAML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_check_config_command_lists_every_error_with_its_line(tmp_path):
    from tests.conftest import run_cli

    p = tmp_path / "c.yaml"
    p.write_text("device: cpu\ndaemon:\n  max_batch: 0\nsources:\n  - {name: a, kind: file}\n")
    proc = run_cli("check-config", str(p))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{p}:3: daemon.max_batch = 0: Input should be greater than or equal to 1",
        f"{p}:5: sources.0: a file source needs 'path'",
    ]
    ok = run_cli("check-config", str(Path(__file__).resolve().parents[2] / "configs" / "sentinel.yaml"))
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_shipped_recipes_load():
    root = Path(__file__).resolve().parents[2] / "configs"
    assert load_config(root / "mvtec.yaml").image.size == 256
    assert load_config(root / "urbansound8k.yaml").training.steps > 0


@pytest.mark.parametrize("text,expect", [
    ("alerts: {mqtt: {prot: 1883}}", "alerts.mqtt.prot"),
    ("alerts: {mqtt: {port: 0}}", "alerts.mqtt.port = 0"),
    ("alerts: {mqtt: {ca_file: ca.pem}}", "alerts.mqtt: ca_file is set but tls is false"),
    ("alerts: {mqtt: {password: x}}", "password needs a username"),
    ("alerts: {mqtt: {topic_prefix: 'a/#'}}", "alerts.mqtt.topic_prefix"),
])
def test_mqtt_section_errors_name_the_key(tmp_path, text, expect):
    p = tmp_path / "c.yaml"
    p.write_text(text + "\n")
    with pytest.raises(ConfigError, match=expect):
        load_config(p)


def test_home_assistant_shorthand(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("alerts:\n  mqtt: {enabled: true, home_assistant: true}\n")
    ha = load_config(p).alerts.mqtt.home_assistant
    assert ha.enabled and ha.discovery_prefix == "homeassistant"
