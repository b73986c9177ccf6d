"""The dashboard's HTTP server: aiohttp on its own thread and event loop, beside the inference
loop, never in its way. Read-only but for one write (POST /api/feedback: "that was normal"), no
CORS headers, a token when one is configured (required off loopback), clips served only from the
clips folder by bare name. The write also needs the page's CSRF token (X-Sentinel-CSRF, from
/api/state) and, when the browser says where it comes from, the dashboard's own origin.

Routes:
  /                          the page (static, shipped in the package; no build step)
  /static/...                its script, style and the vendored uPlot
  /api/state                 everything kept: bundle info, per-source points, status, alerts
  /api/events                server-sent events: what changed, every `push_interval_s`
  /api/alerts/<id>/figure.png  the alert clip's spectrogram with its window scores under it
  /clips/<name>.wav          an alert clip
  POST /api/feedback         {"event_id", "action": "normal"|"undo"}: queued for the daemon
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from sentinel.credentials import secret_value
from sentinel.features.spec import FeatureSpec
from sentinel.render import LiveSpectrogram, score_figure_png
from sentinel.web.settings import WebConfig
from sentinel.web.state import DashboardState

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "sentinel_token"
LIVE_SPECTROGRAM_S = 10.0
_CLIP_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.wav$")

AudioTail = Callable[[str, float], "np.ndarray | None"]
"""(source, seconds) -> the source's newest audio, or None when it has none yet."""


def _peak_text(alert: dict) -> str:
    """The event's peak once it has closed; until then the score that opened it, named so."""
    if "peak_score" in alert:
        return f"peak {alert['peak_score']:.2f} over {alert.get('duration_s', 0):.1f} s"
    return f"opened at {alert['opening_score']:.2f} (still going on)"


class DashboardServer(threading.Thread):
    def __init__(self, cfg: WebConfig, state: DashboardState, *, clips_dir: str | None, audio_tail: AudioTail,
                 features: FeatureSpec, clip_pre_s: float, log=None,
                 feedback: Callable[[str, str, str], None] | None = None) -> None:
        super().__init__(name="dashboard", daemon=True)
        self.cfg, self.state, self.log = cfg, state, log
        self.clips_dir = Path(clips_dir).resolve() if clips_dir else None
        self.audio_tail, self.features, self.clip_pre_s = audio_tail, features, clip_pre_s
        self.sr, self.window_s = features.sample_rate, features.window_seconds
        self.token = secret_value(cfg.token, "web.token")
        self.feedback = feedback
        self.csrf = secrets.token_urlsafe(24)
        """Per daemon run: only a page this dashboard served knows it (no CORS: no other origin reads it)."""
        self.spectrogram = LiveSpectrogram(self.sr)
        self._spec_cache: tuple[float, dict] = (0.0, {})
        self._figures: dict[str, bytes] = {}
        self._render_lock = threading.Lock()  # matplotlib's pyplot is not thread-safe
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None
        self.port = cfg.port
        self.clients = 0

    @property
    def url(self) -> str:
        host = f"[{self.cfg.host}]" if ":" in self.cfg.host else self.cfg.host
        return f"http://{host}:{self.port}/"

    # -- life -----------------------------------------------------------------------------------
    def serve(self) -> None:
        """Start and wait until the port is bound; OSError (port taken, address not here) if it cannot."""
        self.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._loop is not None and self._halt is not None and self.is_alive():
            self._loop.call_soon_threadsafe(self._halt.set)
            self.join(timeout=1.0)

    def run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as e:  # noqa: BLE001 - handed to serve() on the daemon's thread
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._halt = asyncio.Event()
        app = web.Application(middlewares=[self._headers, self._auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_get("/api/events", self._api_events)
        app.router.add_get("/api/alerts/{event_id}/figure.png", self._alert_figure)
        app.router.add_get("/clips/{name}", self._clip)
        if self.feedback is not None:
            app.router.add_post("/api/feedback", self._api_feedback)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.3)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or []  # the real port when 0 was asked for
            if sockets:
                self.port = sockets[0].getsockname()[1]
            self._ready.set()
            await self._halt.wait()
        finally:
            await runner.cleanup()

    # -- middlewares ----------------------------------------------------------------------------
    @web.middleware
    async def _headers(self, request: web.Request, handler) -> web.StreamResponse:
        resp = await handler(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                "media-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
        return resp

    @web.middleware
    async def _auth(self, request: web.Request, handler) -> web.StreamResponse:
        if self.token is None:
            return await handler(request)
        given = request.query.get("token") or request.cookies.get(COOKIE) or ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header.removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise web.HTTPUnauthorized(text="sentinel dashboard: a token is required (open /?token=...)")
        resp = await handler(request)
        if request.query.get("token"):  # the page's own later requests (EventSource, audio) carry a cookie
            resp.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
        return resp

    # -- handlers -------------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:  # noqa: ARG002
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    def _with_clips(self, alerts: list[dict]) -> list[dict]:
        out = []
        for a in alerts:
            name = Path(a["clip"]).name if a.get("clip") else None
            ready = bool(name and self.clips_dir and (self.clips_dir / name).is_file())
            out.append({**a, "clip_name": name if ready else None})
        return out

    def _live_spectrograms(self) -> dict[str, dict]:
        """One computation per push for all pages together."""
        now = time.monotonic()
        at, cached = self._spec_cache
        if now - at < self.cfg.push_interval_s * 0.9:
            return cached
        out = {}
        for name in self.state.sources():
            if not self.clients:
                break  # nobody is watching: /api/state alone draws no spectrogram
            wave = self.audio_tail(name, LIVE_SPECTROGRAM_S)
            if wave is None or wave.size == 0:
                continue
            img = self.spectrogram(wave)
            out[name] = {"rows": img.shape[0], "cols": img.shape[1], "seconds": round(wave.size / self.sr, 3),
                         "b64": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode()}
        self._spec_cache = (now, out)
        return out

    def _payload(self, after: int) -> dict[str, Any]:
        snap = self.state.snapshot(after=after)
        snap["alerts"] = self._with_clips(snap["alerts"])
        snap["spectrograms"] = self._live_spectrograms()
        return snap

    async def _api_state(self, request: web.Request) -> web.Response:  # noqa: ARG002
        snap = self._payload(0)
        snap["info"] = {**self.state.info, "push_interval_s": self.cfg.push_interval_s,
                        "csrf": self.csrf if self.feedback is not None else None}
        return web.json_response(snap, headers={"Cache-Control": "no-store"})

    async def _api_feedback(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("X-Sentinel-CSRF", "").encode(), self.csrf.encode()):
            raise web.HTTPForbidden(text="sentinel dashboard: feedback needs the page's CSRF token (reload the page)")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="sentinel dashboard: feedback from another origin is refused")
        try:
            body = await request.json()
            self.feedback(str(body.get("event_id", "")), str(body.get("action", "normal")),
                          f"dashboard {request.remote}")
        except (ValueError, AttributeError) as e:
            raise web.HTTPBadRequest(text=f"sentinel dashboard: {e}") from None
        return web.json_response({"queued": True}, status=202)

    async def _api_events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        try:  # a browser reconnecting on its own sends the last id it saw
            after = int(request.headers.get("Last-Event-ID") or request.query.get("after") or 0)
        except ValueError:
            after = 0
        pending_clips: set[str] = set()
        self.clients += 1
        assert self._halt is not None
        try:
            while not self._halt.is_set():
                snap = self._payload(after)
                # an alert's clip is written clip_post_s after it: send the alert again once it is there
                ready = []
                for a in self._with_clips([self.state.alert(e) or {} for e in pending_clips]):
                    if a.get("clip_name"):
                        ready.append(a)
                        pending_clips.discard(a["event_id"])
                pending_clips |= {a["event_id"] for a in snap["alerts"] if a.get("clip") and not a["clip_name"]}
                snap["alerts"] += ready
                after = snap["seq"]
                await resp.write(f"id: {after}\nevent: update\ndata: {json.dumps(snap)}\n\n".encode())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._halt.wait(), timeout=self.cfg.push_interval_s)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.clients -= 1
        return resp

    async def _alert_figure(self, request: web.Request) -> web.Response:
        event_id = request.match_info["event_id"]
        alert = self.state.alert(event_id)
        if alert is None:
            raise web.HTTPNotFound(text="no such alert")
        png = self._figures.get(event_id)
        if png is None:
            name = Path(alert["clip"]).name if alert.get("clip") else None
            path = self.clips_dir / name if (name and self.clips_dir) else None
            if path is None or not path.is_file():
                raise web.HTTPNotFound(text="this alert's clip is not written (yet)")
            png = await asyncio.get_running_loop().run_in_executor(None, self._render_alert, alert, path)
            self._figures[event_id] = png
        return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})

    def _render_alert(self, alert: dict, path: Path) -> bytes:
        import soundfile as sf

        wave, sr = sf.read(path, dtype="float32", always_2d=False)
        clip_start = max(0.0, alert["start_offset_s"] - self.clip_pre_s)
        clip_end = clip_start + len(wave) / sr
        pts = self.state.scores_between(alert["source"], clip_start, clip_end - self.window_s)
        starts = [off - clip_start for off, _ in pts]
        scores = np.array([s for _, s in pts], dtype=float)
        with self._render_lock:
            return score_figure_png(wave, self.features, starts, self.window_s, scores, alert.get("threshold"),
                                    title=f"{alert['source']}  {alert['start']}  {_peak_text(alert)}")

    async def _clip(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        # A bare file name in the clips folder, nothing else: no separators, no dot-dot, no symlink out.
        if self.clips_dir is None or not _CLIP_NAME.match(name) or name.startswith("."):
            raise web.HTTPNotFound(text="no such clip")
        path = (self.clips_dir / name).resolve()
        if path.parent != self.clips_dir or not path.is_file():
            raise web.HTTPNotFound(text="no such clip")
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})
