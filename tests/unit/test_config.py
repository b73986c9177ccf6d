from pathlib import Path

import pytest

from sentinel.config import example_yaml, load_config
from sentinel.errors import ConfigError
from sentinel.training.config import TrainConfig, load_train_config
from sentinel.training.config import example_yaml as train_example_yaml

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "sources: [{name: a, kind: microphone}]\ndaemon: {bundle: b}\n"


def test_shipped_example_configs_document_every_key():
    # Both files are generated from the code's field docs: regenerate them when keys change.
    assert (ROOT / "configs" / "sentinel.yaml").read_text() == example_yaml()
    assert (ROOT / "configs" / "train.yaml").read_text() == train_example_yaml()
    assert load_train_config(ROOT / "configs" / "train.yaml") == TrainConfig()


def test_installed_example_config_refuses_to_start_without_sources():
    """An installed service must not monitor the demo: the example has only commented sources."""
    with pytest.raises(ConfigError) as e:
        load_config(ROOT / "configs" / "sentinel.yaml")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "sources: none configured" in msg
    assert "sentinel run` without --config" in msg  # where the demo is


def test_config_without_bundle_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sources: [{name: a, kind: microphone}]\n")
    with pytest.raises(ConfigError, match="daemon.bundle: not set"):
        load_config(p)


def test_each_program_names_the_other_programs_keys(tmp_path):
    run, train = tmp_path / "run.yaml", tmp_path / "train.yaml"
    run.write_text(SOURCE + "training:\n  steps: 10\n")
    with pytest.raises(ConfigError, match=r"run.yaml:3: training: a training setting.*sentinel train"):
        load_config(run)
    train.write_text("model: {base_channels: 8}\nalerts: {journal: x.jsonl}\n")
    with pytest.raises(ConfigError, match=r"train.yaml:2: alerts: a daemon setting"):
        load_train_config(train)


def test_one_hop_setting(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(SOURCE.replace("{bundle: b}", "{bundle: b, hop_seconds: 0.25}"))
    with pytest.raises(ConfigError, match="bundle's scoring.hop_seconds"):
        load_config(p)


def test_no_config_is_the_demo():
    cfg = load_config(None)
    assert [s.name for s in cfg.sources] == ["demo"] and cfg.daemon.bundle.endswith("bundle")


def test_demo_config_loads():
    assert load_train_config(ROOT / "configs" / "demo.yaml").model.base_channels == 16


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("scoring:\n  strenghts: [0.2]\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: scoring.strenghts = \[0.2\]: Unexpected keyword"):
        load_train_config(p)


def test_bad_value_names_key_and_value(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  steps: many\n")
    with pytest.raises(ConfigError, match="c.yaml:2: training.steps = 'many'"):
        load_train_config(p)


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
    shipped = run_cli("check-config", str(ROOT / "configs" / "sentinel.yaml"))
    assert shipped.returncode == 1 and "sources: none configured" in shipped.stdout
    ok = run_cli("check-config", "--program", "train", str(ROOT / "configs" / "urbansound8k.yaml"))
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_shipped_recipes_load():
    root = Path(__file__).resolve().parents[2] / "configs"
    assert load_train_config(root / "mvtec.yaml").image.size == 256
    assert load_train_config(root / "urbansound8k.yaml").training.steps > 0
    inspection = load_train_config(root / "inspection.yaml")
    assert inspection.image.layout == "native" and inspection.image_map.stride > 0


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
    p.write_text(SOURCE + "alerts:\n  mqtt: {enabled: true, home_assistant: true}\n")
    ha = load_config(p).alerts.mqtt.home_assistant
    assert ha.enabled and ha.discovery_prefix == "homeassistant"


def test_loading_the_daemons_config_imports_no_trainer():
    """`sentinel run`'s config is the daemon's alone: reading it needs neither the trainer nor torch."""
    import subprocess
    import sys

    probe = ("import sys, sentinel.config as c; c.load_config(None); "
             "print(sorted(m for m in sys.modules if m.startswith(('sentinel.training', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
