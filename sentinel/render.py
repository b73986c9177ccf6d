"""Pictures of scored audio, shared by the live dashboard and `sentinel score --report`: a
recording's spectrogram with its window scores and the threshold under it (PNG), a compact
live spectrogram (bytes a page paints itself), and the self-contained HTML report."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sentinel.features.spec import FeatureSpec
from sentinel.plots import score_plot


def score_figure_png(wave: np.ndarray, features: FeatureSpec, starts_s: Sequence[float], window_s: float,
                     scores: np.ndarray, threshold: float | None, title: str = "") -> bytes:
    """The spectrogram with window scores under it and the threshold line, as PNG bytes."""
    buf = io.BytesIO()
    score_plot(wave, features, list(starts_s), window_s, np.asarray(scores, dtype=float), threshold, buf,
               title=title)
    return buf.getvalue()


class LiveSpectrogram:
    """Log-mel of the last seconds of a source, as uint8 rows (low bins first) for a canvas.

    numpy only, single-threaded: it runs on the dashboard's thread and must not take torch's
    intra-op threads from the inference loop (which is why it is not sentinel.features.mel's
    LogMel, the one every other picture and the model use)."""

    def __init__(self, sample_rate: int, n_fft: int = 512, hop: int = 512, n_mels: int = 64,
                 dynamic_db: float = 70.0) -> None:
        import torchaudio.functional as AF  # noqa: N812 - torchaudio's own idiom

        self.sr, self.n_fft, self.hop, self.dynamic_db = sample_rate, n_fft, hop, dynamic_db
        fb = AF.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)
        self.fbank = fb.numpy().astype(np.float32)  # (freqs, mels)
        self.win = np.hanning(n_fft).astype(np.float32)

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """(n_mels, frames) uint8: 0 = `dynamic_db` below the loudest cell, 255 = the loudest."""
        x = np.asarray(wave, dtype=np.float32)
        if x.size < self.n_fft:
            return np.zeros((self.fbank.shape[1], 0), dtype=np.uint8)
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[:: self.hop] * self.win
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        db = 10 * np.log10(power @ self.fbank + 1e-10).T
        top = db.max()
        scaled = (db - (top - self.dynamic_db)) / self.dynamic_db
        return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


@dataclass
class ReportEntry:
    """One scored recording in the HTML report."""

    name: str
    file_score: float
    threshold: float | None
    png: bytes
    flagged: list[tuple[float, float, float]] = field(default_factory=list)
    """(start s, end s, score) of each window above the threshold."""


_CSS = """
body{font:14px system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:2em}
.file{background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;margin-bottom:1.5em}
.anomalous{border-left:6px solid #c62828} .normal{border-left:6px solid #2e7d32}
img{max-width:100%} table{border-collapse:collapse}
td,th{padding:2px 10px;border-bottom:1px solid #eee;text-align:right}
.meta{color:#666}
"""


def html_report(entries: Sequence[ReportEntry], bundle_id: str, threshold: float | None) -> str:
    """One self-contained page (images inline): every file's figure, score and flagged windows."""
    esc = html.escape
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    thr = "not calibrated" if threshold is None else f"{threshold:.3f}"
    n_flag = sum(1 for e in entries if e.flagged)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>Sentinel report: {len(entries)} files</title><style>{_CSS}</style></head><body>",
        "<h1>Sentinel report</h1>",
        f"<p class=meta>bundle {esc(bundle_id)} · threshold {thr} · {len(entries)} files, {n_flag} with a window "
        f"above the threshold · written {stamp}</p>",
    ]
    for e in entries:
        anomalous = bool(e.flagged)  # a window above the threshold, as the daemon alerts
        verdict = "ANOMALOUS" if anomalous else ("normal" if e.threshold is not None else "")
        parts.append(f"<div class='file {'anomalous' if anomalous else 'normal'}'>")
        parts.append(f"<h2>{esc(e.name)} <span class=meta>file score {e.file_score:.3f} {verdict}</span></h2>")
        parts.append(f"<img alt='spectrogram and window scores of {esc(e.name)}' "
                     f"src='data:image/png;base64,{base64.b64encode(e.png).decode()}'>")
        if e.flagged:
            parts.append("<table><tr><th>window start (s)</th><th>end (s)</th><th>score</th></tr>")
            parts += [f"<tr><td>{a:.2f}</td><td>{b:.2f}</td><td>{s:.3f}</td></tr>" for a, b, s in e.flagged]
            parts.append("</table>")
        elif e.threshold is not None:
            parts.append("<p class=meta>no window above the threshold</p>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(scored: Sequence, post, features: FeatureSpec, bundle_id: str, out) -> None:
    """`sentinel score --report`: one page for recordings scored by `sentinel.recordings.score_files`,
    drawn by the code that draws the dashboard's alert views; the verdicts are the post-processor's."""
    from pathlib import Path

    from sentinel.audio import load_audio
    from sentinel.errors import DataError

    thr, entries = post.threshold, []
    for s in scored:
        png = score_figure_png(load_audio(s.path, features.sample_rate).numpy(), features, s.starts_s, s.window_s,
                               s.scores, thr, title=f"{s.path.name}  file score {s.file_score:.2f}")
        flagged = [(a, a + s.window_s, float(v)) for a, v in zip(s.starts_s, s.scores, strict=True)
                   if post.window_flagged(float(v))]
        entries.append(ReportEntry(str(s.path), s.file_score, thr, png, flagged))
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html_report(entries, bundle_id, thr), encoding="utf-8")
    except OSError as e:
        raise DataError(f"--report {out}: cannot write ({e.strerror}); pick a writable path") from None


def write_plots(scored: Sequence, threshold: float | None, features: FeatureSpec, bundle_id: str, folder) -> list:
    """`sentinel score --plot DIR`: one PNG per recording, its spectrogram with its window scores."""
    from pathlib import Path

    from sentinel.audio import load_audio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for s in scored:
        out = folder / f"{s.path.stem}_scores.png"
        score_plot(load_audio(s.path, features.sample_rate).numpy(), features, s.starts_s, s.window_s, s.scores,
                   threshold, out, title=f"{s.path.name}  file score {s.file_score:.2f}  (bundle {bundle_id})")
        written.append(out)
    return written
