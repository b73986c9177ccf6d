""""That was normal", applied to a bundle: run by the daemon as a child process at the lowest CPU
priority with one thread, like the learning phase's training.

`python -m sentinel.training.feedback_job JOB.json` reads the bundle, and for `normal` scores the
event's clip finely (an eighth of a window apart, so any later alignment of the same sound lies
near one of them) and adds the signatures of the windows that hold the event (those past its
onset that cross the threshold) to the post-processor's accepted sounds, with a radius of most of
the distance from that sound to the normal audio before it in the clip; for `undo` it removes
them again. The network and its normal statistics stay as they are: one clip among thousands of
normal windows would barely move a Gaussian, and weighting it enough to matter would blur the
model for every other fault. The threshold is then recalibrated on the source's held-out normal
audio where the daemon has it (a learned source), with the same target; the new bundle is
written to the job's `out` folder, and the last line of stdout is the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

DEFAULT_RADIUS = 1.0
"""Radius when the clip holds no audio before its event to measure one against."""
RADIUS_SHARE = 0.75
"""A later window counts as the accepted sound within this share of the way from it to the normal
audio before it (on generated audio, other knocks lay at 0.63 of that way, a whine at 1.3, a
rattle at 6: chosen there, not on any real set)."""


def _profiles(scorer, wave, hop: int):
    import torch

    from sentinel.windows import sliding_windows

    spec = scorer.extractor.spec
    w = sliding_windows(wave, spec.window_samples, hop)
    rows, scores = [], []
    with torch.inference_mode():
        for i in range(0, w.samples.shape[0], 32):
            batch = w.samples[i:i + 32]
            rows.append(scorer.raw(batch).signature.cpu())
            scores.append(scorer.score(batch).scores)  # window alone (no span), as the windows that alerted
    return torch.tensor(w.starts), torch.cat(rows), torch.cat(scores)


def accept(bundle, scorer, clip: str, event_id: str, pre_s: float) -> tuple[object, int, float]:
    """(new post-processor, windows accepted, radius) for the event in `clip`, which starts `pre_s`
    before the event."""
    import torch

    from sentinel.audio import load_audio
    from sentinel.errors import DataError

    spec = scorer.extractor.spec
    wave = load_audio(clip, spec.sample_rate)
    if wave.numel() < spec.window_samples:
        raise DataError(f"{clip}: shorter than one window; this event cannot be learned from")
    starts, prof, scores = _profiles(scorer, wave, max(1, spec.window_samples // 8))
    onset, win = round(pre_s * spec.sample_rate), spec.window_samples
    after = starts + win > onset  # the window holds some of the event
    context = starts + win <= onset  # wholly before it: the machine's normal sound, there and then
    if not after.any():
        raise DataError(f"{clip}: holds no audio of its event; it cannot be learned from")
    # The sound itself: the windows after the onset that cross the threshold (an event shorter
    # than the clip leaves normal audio after it, which is not what the user meant).
    thr = bundle.threshold
    event = after & (scores > thr) if thr is not None else after
    if context.any():
        d_ctx = torch.cdist(prof, prof[context]).min(1).values / prof.shape[1] ** 0.5
        if not event.any():  # crossed only with the span's help: the windows least like the context
            event = after & (d_ctx >= d_ctx[after].quantile(0.75))
        radius = RADIUS_SHARE * float(d_ctx[event].median())
    else:
        event = event if event.any() else after
        radius = DEFAULT_RADIUS
    return bundle.post.with_accepted(event_id, prof[event], radius), int(event.sum()), radius


def run(job: dict) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from sentinel.bundle import load_bundle, save_bundle
    from sentinel.recordings import score_files
    from sentinel.scoring.calibration import calibrate

    bundle = load_bundle(job["bundle"])
    before, before_id = bundle.threshold, bundle.bundle_id
    out: dict = {"event_id": job["event_id"], "action": job["action"]}
    if job["action"] == "normal":
        post, n, radius = accept(bundle, bundle.scorer(torch.device("cpu")), job["clip"], job["event_id"],
                                 job["pre_s"])
        out |= {"accepted_windows": n, "radius": round(radius, 4)}
    else:
        post = bundle.post.without_accepted(job["event_id"])
    bundle.post = post
    normal = [p for p in job.get("normal") or [] if Path(p).is_file()]
    cal = bundle.calibration
    if normal and cal is not None and cal.method == "false_alarms_per_hour":
        scorer = bundle.scorer(torch.device("cpu"))
        scored = score_files(scorer, normal, warn=lambda m: None)
        if scored:
            scores = np.concatenate([s.scores for s in scored])
            bundle.post.calibration = calibrate(scores, scorer.config.hop_seconds, len(scored),
                                                false_alarms_per_hour=cal.target)
    save_bundle(bundle, job["out"])
    return out | {"threshold_before": before, "threshold_after": bundle.threshold, "bundle_id_before": before_id,
                  "bundle_id": bundle.bundle_id, "recalibrated_on": len(normal)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sentinel.training.feedback_job JOB.json", file=sys.stderr)
        return 2
    from sentinel.errors import SentinelError

    try:
        print(json.dumps({"event": "done", **run(json.loads(Path(args[0]).read_text()))}), flush=True)
    except SentinelError as e:
        print(json.dumps({"event": "failed", "error": str(e).splitlines()[0]}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
