"""The `sentinel` console script, driven as a user drives it."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli


@pytest.mark.parametrize("cmd", [[], ["train"], ["calibrate"], ["score"], ["eval"]])
def test_help_explains_itself(cmd):
    proc = run_cli(*cmd, "--help", check=True)
    assert "usage: sentinel" in proc.stdout and len(proc.stdout.splitlines()) > 5


def test_score_jsonl_windows_and_files(tiny_bundle, machine_data):
    proc = run_cli("score", str(tiny_bundle), str(machine_data["test"]), "--format", "jsonl", "--device", "cpu",
                   check=True)
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    windows = [r for r in rows if r["kind"] == "window"]
    files = [r for r in rows if r["kind"] == "file"]
    assert len(files) == 8
    assert set(windows[0]) == {"kind", "file", "start_s", "end_s", "score", "threshold", "anomaly"}
    assert all(isinstance(w["anomaly"], bool) and w["threshold"] > 0 for w in windows)
    for f in files:  # file score = mean of its three highest windows
        mine = sorted((w["score"] for w in windows if w["file"] == f["file"]), reverse=True)
        assert f["score"] == pytest.approx(sum(mine[:3]) / 3, abs=1e-3)
        # flagged when any window is (what the daemon alerts on), whatever ranks the files
        assert f["anomaly"] == any(w["anomaly"] for w in windows if w["file"] == f["file"])
    flagged = {f["file"].rsplit("/", 1)[1] for f in files if f["anomaly"]}
    assert flagged and all(name.startswith("anomalous") for name in flagged)
    assert "real-time factor" in proc.stderr


def test_table_format_marks_flagged_windows(tiny_bundle, machine_data):
    proc = run_cli("score", str(tiny_bundle), str(machine_data["test"] / "anomalous_0.wav"), check=True)
    assert "<-- anomaly" in proc.stdout and "threshold" in proc.stdout


def test_eval_reports_auc_and_writes_plot(tiny_bundle, machine_data, tmp_path):
    plot = tmp_path / "roc.png"
    proc = run_cli("eval", str(tiny_bundle), "--normal", str(machine_data["test"] / "normal_*.wav"),
                   "--anomalous", str(machine_data["test"] / "anomalous_*.wav"), "--plot", str(plot),
                   "--format", "json", check=True)
    result = json.loads(proc.stdout)
    assert result["n_normal"] == 4 and result["n_anomalous"] == 4
    assert result["auc"] >= 0.9
    # pAUC is scikit-learn's (DCASE's) over the file scores `score` prints
    from sklearn.metrics import roc_auc_score

    files = [json.loads(x) for x in run_cli("score", str(tiny_bundle), str(machine_data["test"]), "--format", "jsonl",
                                            check=True).stdout.splitlines()]
    files = [r for r in files if r["kind"] == "file"]
    y = [int(Path(r["file"]).name.startswith("anomalous")) for r in files]
    assert result["pauc"] == pytest.approx(roc_auc_score(y, [r["score"] for r in files], max_fpr=0.1), abs=1e-6)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_uncalibrated_bundle_says_so(tiny_config, machine_data, tmp_path):
    out = tmp_path / "b"
    run_cli("train", "--data", str(machine_data["normal"]), "--out", str(out), "--config", str(tiny_config),
            "--steps", "2", check=True)
    proc = run_cli("score", str(out), str(machine_data["test"] / "normal_0.wav"), "--format", "jsonl", check=True)
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert all(r["anomaly"] is None for r in rows)
    assert all(r["threshold"] is None for r in rows if r["kind"] == "window")


def test_resume_continues_from_checkpoint(tiny_config, machine_data, tmp_path):
    out = tmp_path / "b"
    run_cli("train", "--data", str(machine_data["normal"]), "--out", str(out), "--config", str(tiny_config),
            "--steps", "3", check=True)
    proc = run_cli("train", "--data", str(machine_data["normal"]), "--out", str(out), "--config",
                   str(tiny_config), "--steps", "5", "--resume", check=True)
    assert json.loads(proc.stdout.splitlines()[-1])["steps"] == 5
    assert "resumed" in proc.stderr


def test_corrupt_file_is_named_and_the_rest_still_scored(tiny_bundle, machine_data, tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)
    sf.write(tmp_path / "good.wav", sf.read(machine_data["test"] / "normal_0.wav")[0], 16000)
    proc = run_cli("score", str(tiny_bundle), str(tmp_path), "--format", "jsonl")
    assert proc.returncode == 0
    files = [json.loads(x)["file"] for x in proc.stdout.splitlines() if '"kind": "file"' in x]
    assert [f.rsplit("/", 1)[1] for f in files] == ["good.wav"]
    warnings = proc.stderr.splitlines()
    assert any("broken.wav" in w for w in warnings) and any("short.wav" in w for w in warnings)
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args,expect",
    [
        (["score", "{missing}", "x.wav"], "no such folder"),
        (["train", "--data", "{empty}", "--out", "{tmp}/o"], "no audio files found"),
        (["calibrate", "{bundle}", "--normal", "{empty}"], "no audio files found"),
        (["calibrate", "{bundle}", "--normal", "x", "--quantile", "2"], "must be between 0 and 1"),
        (["train", "--data", "x", "--out", "o", "--steps", "-3"], "must be at least 1"),
        (["score", "{bundle}", "x.wav", "--format", "xml"], "invalid choice"),
        (["train", "--data", "{empty}", "--out", "o", "--config", "{badcfg}"], "training.stepz"),
    ],
)
def test_errors_are_one_line_without_traceback(args, expect, tiny_bundle, tmp_path):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  stepz: 3\n")
    subs = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "tmp": tmp_path, "bundle": tiny_bundle,
            "badcfg": bad}
    proc = run_cli(*[a.format(**subs) for a in args])
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
