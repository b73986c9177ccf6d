"""The training half of a source's learning phase, run by the daemon as a child process at the
lowest CPU priority with one thread, so the sources being monitored keep real time.

`python -m sentinel.training.learn_job WORKDIR` reads WORKDIR/job.json (written by the daemon's
learner): train on the recorded segments it names (resuming from the checkpoint of a run that was
killed), calibrate the threshold on the latest segments, which training never saw, and move the
finished bundle into place with one rename, so the daemon never reads half a bundle. Progress goes
to WORKDIR/progress.json; the last line of stdout is the result.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

PARTIAL = "bundle.partial"


def _progress(workdir: Path, steps: int):
    def log(event: str, **kw) -> None:
        if "step" in kw or "steps" in kw:
            done = kw.get("step", kw.get("steps", 0))
            text = json.dumps({"step": done, "steps": steps, "progress": round(min(1.0, done / steps), 4)})
            tmp = workdir / "progress.json.tmp"
            tmp.write_text(text)
            os.replace(tmp, workdir / "progress.json")
        print(json.dumps({"event": event, **kw}), flush=True)

    return log


def run(workdir: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from sentinel.bundle import write_meta
    from sentinel.features.spec import FeatureSpec
    from sentinel.recordings import score_files
    from sentinel.scoring.calibration import calibrate
    from sentinel.training.config import load_train_config
    from sentinel.training.trainer import CHECKPOINT, train

    job = json.loads((workdir / "job.json").read_text())
    cfg = load_train_config(job.get("train_config"))
    features = FeatureSpec(**job["features"]) if job.get("features") else cfg.features
    scoring = cfg.scoring
    if job.get("hop_seconds") is not None:
        scoring = dataclasses.replace(scoring, hop_seconds=job["hop_seconds"])
    # Checkpoints often: a kill costs at most this many steps, and progress moves visibly.
    steps = job.get("steps") or cfg.training.steps
    tcfg = dataclasses.replace(cfg.training, steps=steps, checkpoint_every=max(1, min(50, steps // 10)))
    partial = workdir / PARTIAL
    resume = (partial / CHECKPOINT).is_file()
    log = _progress(workdir, steps)
    result = train(data=job["train"], out=partial, features=features, model_config=cfg.model,
                   scheduler_config=cfg.scheduler, scoring=scoring, config=tcfg, device=torch.device("cpu"),
                   resume=resume, log=log)
    bundle = result.bundle
    assert bundle is not None
    scorer = bundle.scorer(torch.device("cpu"))
    scored = score_files(scorer, job["calibrate"], warn=lambda m: log("skipped", file=m))
    if not scored:
        raise SystemExit("learning: no held-out recording could be scored to calibrate on")
    import numpy as np

    scores = np.concatenate([s.scores for s in scored])
    bundle.calibration = calibrate(scores, scorer.config.hop_seconds, len(scored),
                                   false_alarms_per_hour=job["false_alarms_per_hour"])
    bundle.training["learned"] = {"source": job["source"], "segments": len(job["train"]) + len(job["calibrate"]),
                                  "calibration_segments": len(job["calibrate"])}
    write_meta(bundle)
    (partial / CHECKPOINT).unlink(missing_ok=True)
    out = Path(job["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # a finished bundle is never overwritten by a learning run
        shutil.rmtree(partial)
        return {"bundle": str(out), "kept": "existing"}
    os.rename(partial, out)
    return {"bundle": str(out), "bundle_id": bundle.bundle_id, "threshold": round(bundle.calibration.threshold, 4),
            "steps": result.steps, "seconds": round(result.seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sentinel.training.learn_job WORKDIR", file=sys.stderr)
        return 2
    from sentinel.errors import SentinelError

    try:
        print(json.dumps({"event": "done", **run(Path(args[0]))}), flush=True)
    except SentinelError as e:
        print(json.dumps({"event": "failed", "error": str(e).splitlines()[0]}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
