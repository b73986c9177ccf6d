"""The dashboard: a real headless Chromium on the running demo, and its safety with a plain
HTTP client (token, path traversal, read-only, no CORS)."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sentinel.config import DEMO_DIR
from sentinel.features.spec import FeatureSpec
from sentinel.web.server import DashboardServer
from sentinel.web.settings import WebConfig
from sentinel.web.state import DashboardState
from tests.conftest import sentinel_cmd
from tests.helpers.net import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the environment notes say: headless, and no background traffic the closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


def test_demo_in_a_real_browser(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (make system-deps)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    cfg = {"device": "cpu", "web": {"port": port}, "daemon": {"bundle": str(DEMO_DIR / "bundle")},
           "sources": [{"name": "demo", "kind": "file", "path": str(DEMO_DIR / "recording.flac"), "loop": True}],
           "alerts": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "journal": str(tmp_path / "alerts.jsonl"),
                      "clips_dir": str(tmp_path / "clips"), "clip_post_s": 1.0}}
    config = tmp_path / "sentinel.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([*sentinel_cmd(), "run", "--config", str(config)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            opened = time.monotonic()
            page.goto(url)
            card = page.wait_for_selector("article.source[data-source=demo]", timeout=15_000)
            assert "demo" in card.inner_text()
            page.wait_for_function("() => document.querySelector('article.source').dataset.points > 0")
            n0 = int(card.get_attribute("data-points"))
            page.wait_for_function(f"() => document.querySelector('article.source').dataset.points > {n0 + 2}",
                                   timeout=10_000)  # the score line grows with pushed updates
            page.wait_for_selector("#alerts tbody tr", timeout=30_000)
            assert time.monotonic() - opened < 30, "no alert row within 30 s"
            row = page.query_selector("#alerts tbody tr")
            assert "demo" in row.inner_text()
            page.wait_for_selector("#alerts tbody tr audio", timeout=15_000)
            page.wait_for_function("() => document.querySelector('#alerts audio').duration > 0", timeout=10_000)
            page.evaluate("document.querySelector('#alerts audio').play()")
            page.wait_for_function("() => document.querySelector('#alerts audio').currentTime > 0", timeout=10_000)
            page.click("#alerts tbody tr button")  # the clip's spectrogram with its window scores
            page.wait_for_function("() => document.querySelector('#alert-figure img').naturalWidth > 0", timeout=20_000)
            # the live spectrogram is painted: bright and dark cells, not a blank canvas
            contrast = page.eval_on_selector(".spectrogram", """c => {
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let lo = 255, hi = 0;
                for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }
                return hi - lo; }""")
            assert contrast > 100, contrast
            # once the event has closed, its row shows the event's real peak, not the score that opened it
            page.wait_for_function("() => document.querySelector('#alerts tbody tr td:nth-child(3)')"
                                   ".title.startsWith('peak over')", timeout=30_000)
            assert page.inner_text("#link") == "live"
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            if os.environ.get("SENTINEL_SCREENSHOT"):  # the README's picture: SENTINEL_SCREENSHOT=docs/dashboard.png
                shutil.copy(tmp_path / "dashboard.png", os.environ["SENTINEL_SCREENSHOT"])
            browser.close()
        assert not errors, errors
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


@pytest.fixture
def board(tmp_path, request):
    token = getattr(request, "param", None)
    clips = tmp_path / "clips"
    clips.mkdir()
    sf.write(clips / "demo-1.wav", np.zeros(16000, dtype=np.float32), 16000)
    (tmp_path / "secret.wav").write_bytes(b"RIFF secret")
    (clips / "link.wav").symlink_to(tmp_path / "secret.wav")
    state = DashboardState(600, 0.5, {"bundle": "test"})
    state.record("alert.demo", {"event_id": "e1", "source": "demo", "clip": str(clips / "demo-1.wav"),
                                "start_offset_s": 1.0, "start": "2026-01-01T00:00:00+00:00", "peak_score": 9.0,
                                "threshold": 3.0})
    server = DashboardServer(WebConfig(port=free_port(), token=token), state, clips_dir=str(clips),
                             audio_tail=lambda name, s: None, features=FeatureSpec(), clip_pre_s=0.5)
    server.serve()
    yield server
    server.close()


def get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_clips_only_from_the_clips_folder(board):
    base = board.url
    assert get(base + "clips/demo-1.wav")[0] == 200
    for bad in ["clips/..%2Fsecret.wav", "clips/%2e%2e%2fsecret.wav", "clips/../secret.wav",
                "clips/link.wav", "clips/.hidden.wav", "clips/demo-1.txt", "static/..%2Fserver.py",
                "static/../server.py"]:
        status, _, body = get(base + bad)
        assert status in (403, 404), (bad, status)
        assert b"secret" not in body


def test_read_only_and_no_cors(board):
    status, headers, body = get(board.url + "api/state", headers={"Origin": "http://evil.example"})
    assert status == 200 and json.loads(body)["alerts"][0]["clip_name"] == "demo-1.wav"
    assert not any(k.lower().startswith("access-control-") for k in headers)
    assert get(board.url + "api/state", method="POST")[0] == 405
    assert get(board.url + "clips/demo-1.wav", method="DELETE")[0] == 405


@pytest.mark.parametrize("board", ["t0ken-abc"], indirect=True)
def test_token_is_required_when_set(board):
    assert get(board.url)[0] == 401
    assert get(board.url + "api/state", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert get(board.url + "clips/demo-1.wav")[0] == 401
    assert get(board.url + "api/state", headers={"Authorization": "Bearer t0ken-abc"})[0] == 200
    status, headers, _ = get(board.url + "?token=t0ken-abc")
    assert status == 200 and "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert get(board.url + "clips/demo-1.wav", headers={"Cookie": "sentinel_token=t0ken-abc"})[0] == 200


def test_non_loopback_bind_without_token_refuses_to_start(tmp_path):
    from tests.conftest import run_cli

    p = tmp_path / "c.yaml"
    sources = "sources: [{name: a, kind: microphone}]\ndaemon: {bundle: b}\n"
    p.write_text(sources + "web: {host: 0.0.0.0}\n")
    proc = run_cli("run", "--config", str(p))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "web" in lines[0] and "token" in lines[0], proc.stderr
    p.write_text(sources + "web: {host: 0.0.0.0, token: credential:web}\n")
    assert "OK" in run_cli("check-config", str(p)).stdout


def test_score_report_is_one_self_contained_page(tiny_bundle, machine_data, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "report.html"
    files = [str(machine_data["test"] / "anomalous_0.wav"), str(machine_data["test"] / "normal_0.wav")]
    run_cli("score", str(tiny_bundle), *files, "--report", str(out), "--device", "cpu", check=True)
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "anomalous_0.wav" in page and "normal_0.wav" in page and "threshold" in page
    assert "<td>" in page  # the flagged windows of the anomalous file are listed
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from anywhere
    assert Path(out).stat().st_size > 20_000
