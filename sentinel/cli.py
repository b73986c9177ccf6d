"""The `sentinel` command: parse (cli_args), load, dispatch; every command returns an exit code.
The work is elsewhere: training in sentinel.training, scoring recordings in sentinel.recordings,
evaluation in sentinel.evaluation, reports in sentinel.render, the daemon in sentinel.service."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sentinel import cli_daemon, cli_learn
from sentinel.cli_args import build_parser
from sentinel.errors import DataError, SentinelError


def _warn(msg: str) -> None:
    print(f"sentinel: warning: {msg}", file=sys.stderr, flush=True)


def _load(bundle_path: str, device: str, machine: str | None = None):
    from sentinel.bundle import load_bundle
    from sentinel.devices import resolve_device

    bundle = load_bundle(bundle_path).for_machine(machine)
    return bundle, bundle.scorer(resolve_device(device))


NAME = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


def named(values: list[str] | None, flag: str) -> tuple[dict[str, list[str]], list[str]]:
    """({machine: paths} of NAME=DIR values, plain values); one flag takes one kind or the other."""
    out: dict[str, list[str]] = {}
    plain: list[str] = []
    for v in values or []:
        m = NAME.match(v)
        if m and not Path(v).exists():
            out.setdefault(m[1], []).append(m[2])
        else:
            plain.append(v)
    if out and plain:
        raise DataError(f"{flag}: {plain[0]!r} has no machine name while others do; give every one as NAME=DIR")
    return out, plain


def _train_data(args: argparse.Namespace) -> list:
    if args.dataset == "urbansound8k":
        from sentinel.evaluation import us8k_split
        from sentinel.training import urbansound8k as us8k

        clips, normal_ids = us8k_split(args.root, args.normal_classes)
        files = us8k.train_files(clips, normal_ids, args.test_fold)
        if not files:
            raise DataError(f"{args.root}: no normal-class clips outside fold {args.test_fold}")
        return files
    if not args.data:
        raise DataError("train: give --data DIR (or --dataset urbansound8k --root DIR)")
    machines, plain = named(args.data, "train --data")
    return machines or plain


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from sentinel.devices import resolve_device
    from sentinel.logs import get_logger
    from sentinel.training.config import load_train_config

    cfg = load_train_config(args.config)
    overrides = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.max_minutes),
                                   ("seed", args.seed)) if v is not None}
    tcfg = dataclasses.replace(cfg.training, **overrides)
    device = resolve_device(args.device or cfg.device)
    common = {"device": device, "log": get_logger("sentinel.train").info,
              "on_file_error": lambda m: _warn(f"skipped {m}")}
    if args.outliers and (args.model == "autoencoder" or args.modality == "image"):
        raise DataError("train --outliers: only diffusion fleets of audio learn from outliers; drop it")
    if args.model == "autoencoder":
        from sentinel.training.autoencoder import train_autoencoder

        if args.modality == "image":
            raise DataError("train --model autoencoder: the DCASE baseline is for audio; drop --modality image")
        result = train_autoencoder(_train_data(args), args.out, cfg.autoencoder, seed=tcfg.seed,
                                   max_minutes=args.max_minutes, **common)
    elif args.modality == "image":
        from sentinel.image.train import train_images

        data = [args.root] if args.dataset == "mvtec" and args.root else args.data
        if args.dataset == "urbansound8k" or not data:
            raise DataError("train --modality image: give --data DIR (an MVTec AD category or a folder of "
                            "normal images)")
        result = train_images(data=data, out=args.out, spec=cfg.image, map_config=cfg.image_map,
                              model_config=cfg.model, scheduler_config=cfg.scheduler, scoring=cfg.scoring,
                              config=tcfg, resume=args.resume, **common)
    else:
        from sentinel.training.trainer import train

        if args.dataset == "mvtec":
            raise DataError("train --dataset mvtec: add --modality image (MVTec AD holds images)")
        result = train(data=_train_data(args), out=args.out, features=cfg.features, model_config=cfg.model,
                       scheduler_config=cfg.scheduler, scoring=cfg.scoring, config=tcfg, resume=args.resume,
                       outliers=args.outliers, **common)
    if result.bundle is None:  # a non-zero rank of a distributed run: rank 0 reports
        return 0
    print(json.dumps({"bundle": str(args.out), "bundle_id": result.bundle.bundle_id, "steps": result.steps,
                      "seconds": round(result.seconds, 1), "final_loss": round(result.final_loss, 5)}))
    return 0


def cmd_refit(args: argparse.Namespace) -> int:
    """The same trained network, its normal statistics fitted again with today's (or --config's)
    scoring recipe: how a bundle from an older Sentinel gets today's components and fusion
    without hours of training."""
    from sentinel.bundle import load_bundle, save_bundle
    from sentinel.devices import resolve_device
    from sentinel.training.config import load_train_config
    from sentinel.training.trainer import refit

    src = Path(args.bundle)
    if Path(args.out).resolve() == src.resolve():
        raise DataError(f"refit --out {args.out}: that is the bundle being refitted; give a new folder "
                        "(the old bundle stays as it was)")
    bundle = load_bundle(src)
    if bundle.model_kind != "diffusion" or bundle.modality != "audio":
        raise DataError(f"bundle {src}: refit is for diffusion audio bundles; retrain this one with sentinel train")
    machines, plain = named(args.data, "refit --data")
    scoring = load_train_config(args.config).scoring
    fresh = refit(bundle, machines or plain, scoring, resolve_device(args.device),
                  on_file_error=lambda m: _warn(f"skipped {m}"))
    save_bundle(fresh, args.out)
    print(json.dumps({"bundle": str(args.out), "bundle_id": fresh.bundle_id, "from": bundle.bundle_id,
                      "frames": fresh.frames is not None, "calibrated": False,
                      "next": f"sentinel calibrate {args.out} --normal DIR"}))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    machines, plain = named(args.normal, "calibrate --normal")
    if machines and args.machine:
        raise DataError("calibrate: give --machine NAME with plain --normal DIR, or NAME=DIR without --machine")
    for machine, normal in (machines or {args.machine: plain}).items():
        _calibrate(args, machine, normal)
    return 0


def _calibrate(args: argparse.Namespace, machine: str | None, normal: list[str]) -> None:
    from sentinel.bundle import write_meta
    from sentinel.scoring.calibration import calibrate

    bundle, scorer = _load(args.bundle, args.device, machine)
    if bundle.modality == "image":
        from sentinel.evaluation import training_images_warning
        from sentinel.image.maps import score_image_files

        if args.false_alarms_per_hour is not None:
            raise DataError("calibrate: an image bundle has no time axis; use --quantile Q (default 0.99)")
        if (msg := training_images_warning(bundle, normal)) is not None:
            _warn(msg)
        scores = np.array([r.score for r in score_image_files(scorer, bundle.spec, normal, warn=_warn)])
        n_files, rate, quantile = len(scores), None, args.quantile or 0.99
    else:
        from sentinel.recordings import score_files

        scored = score_files(scorer, normal, warn=_warn)
        if not scored:
            raise DataError(f"{', '.join(normal)}: no readable normal recordings to calibrate on")
        scores = np.concatenate([s.scores for s in scored])
        n_files, quantile = len(scored), args.quantile
        rate = None if args.quantile is not None else (args.false_alarms_per_hour or 1.0)
    try:
        cal = calibrate(scores, scorer.config.hop_seconds, n_files, false_alarms_per_hour=rate, quantile=quantile)
    except ValueError as e:
        raise DataError(f"calibration: {e}") from None
    bundle.calibration = cal
    write_meta(bundle)
    flagged = sum(bool(bundle.post.window_flagged(float(v))) for v in scores)
    print(json.dumps({"bundle": str(args.bundle), **({"machine": machine} if machine else {}),
                      "threshold": round(cal.threshold, 4), "method": cal.method, "target": cal.target,
                      "normal_windows": cal.n_windows, "normal_files": cal.n_files, "normal_windows_above": flagged}))


def _score_images(args: argparse.Namespace, bundle, scorer) -> int:
    from sentinel.image.maps import save_overlay, score_image_files

    started = time.perf_counter()
    scored = score_image_files(scorer, bundle.spec, args.paths, with_maps=bool(args.maps), warn=_warn)
    elapsed = time.perf_counter() - started
    for r in scored:
        amap = str(save_overlay(r.image, r.map, Path(args.maps) / f"{r.path.stem}_map.png")) if args.maps else None
        flag = scorer.post.window_flagged(r.score)
        if args.only_anomalies and not flag:
            continue
        if args.format == "jsonl":
            print(json.dumps({"kind": "image", "file": str(r.path), "score": round(r.score, 4),
                              "threshold": bundle.threshold, "anomaly": flag, "map": amap}))
        else:
            print(f"{r.score:8.3f}  {'ANOMALOUS  ' if flag else ''}{r.path}{'  -> ' + amap if amap else ''}")
    print(f"sentinel: scored {len(scored)} images in {elapsed:.1f} s", file=sys.stderr)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from sentinel.recordings import score_files
    from sentinel.render import write_plots, write_report

    bundle, scorer = _load(args.bundle, args.device, args.machine)
    if bundle.modality == "image":
        if args.report:
            raise DataError("score --report: the HTML report is for audio bundles; use --maps DIR for images")
        return _score_images(args, bundle, scorer)
    if args.maps:
        raise DataError("score --maps: anomaly maps are for image bundles; this one scores audio")
    post, thr = scorer.post, bundle.threshold
    started = time.perf_counter()
    scored = score_files(scorer, args.paths, warn=_warn)
    elapsed = time.perf_counter() - started
    if not scored:
        raise DataError("no file could be scored; see the warnings above")
    if args.plot:
        for out in write_plots(scored, thr, bundle.features, bundle.bundle_id, args.plot):
            print(f"sentinel: wrote {out}", file=sys.stderr)
    if args.report:
        write_report(scored, post, bundle.features, bundle.bundle_id, args.report)
        print(f"sentinel: wrote {args.report}", file=sys.stderr)
    out = sys.stdout
    table = args.format == "table"
    if table:
        out.write(f"bundle {bundle.bundle_id}  threshold {'uncalibrated' if thr is None else f'{thr:.3f}'}\n")
    for s in scored:
        if table:
            out.write(f"\n{s.path}  file score {s.file_score:.3f}{'  ANOMALOUS' if s.flagged else ''}\n")
            out.write(f"  {'start s':>8} {'end s':>8} {'score':>8}\n")
        for start, score in zip(s.starts_s, s.scores.tolist(), strict=True):
            flag = post.window_flagged(score)
            if args.only_anomalies and not flag:
                continue
            if not table:
                out.write(json.dumps({"kind": "window", "file": str(s.path), "start_s": round(start, 3),
                                      "end_s": round(start + s.window_s, 3), "score": round(score, 4),
                                      "threshold": thr, "anomaly": flag}) + "\n")
            else:
                out.write(f"  {start:8.2f} {start + s.window_s:8.2f} {score:8.3f}{'  <-- anomaly' if flag else ''}\n")
        if not table:
            out.write(json.dumps({"kind": "file", "file": str(s.path), "score": round(s.file_score, 4),
                                  "anomaly": s.flagged}) + "\n")
    audio_s = sum(s.starts_s[-1] + s.window_s for s in scored)
    print(f"sentinel: scored {audio_s:.1f} s of audio in {elapsed:.1f} s "
          f"(real-time factor {audio_s / max(elapsed, 1e-9):.1f})", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    normal, _ = named(args.normal, "eval --normal")
    anomalous, _ = named(args.anomalous, "eval --anomalous")
    if not normal and not anomalous:
        _eval(args, args.machine, args.normal, args.anomalous)
        return 0
    if args.machine or set(normal) != set(anomalous):
        raise DataError("eval: give every machine as both --normal NAME=DIR and --anomalous NAME=DIR (and no "
                        "--machine)")
    results = []
    for machine in normal:
        results.append(_eval(args, machine, normal[machine], anomalous[machine]))
    mean = {k: float(np.mean([r[k] for r in results])) for k in ("auc", "pauc")}
    if args.format == "json":
        print(json.dumps({"kind": "mean", "machines": list(normal), **mean}))
    else:
        print(f"\nmean over {len(results)} machines: AUC {mean['auc']:.3f}  pAUC {mean['pauc']:.3f}")
    return 0


def _eval(args: argparse.Namespace, machine: str | None, normal: list[str] | None, anomalous: list[str] | None
          ) -> dict:
    from sentinel import evaluation

    bundle, scorer = _load(args.bundle, args.device, machine)
    if bundle.modality == "image":
        labelled = evaluation.eval_images(scorer, bundle, args.dataset, args.root, normal, anomalous, _warn)
    elif args.dataset == "mvtec":
        raise DataError("--dataset mvtec: this bundle scores audio; train one with --modality image")
    elif args.dataset == "urbansound8k":
        labelled = evaluation.eval_urbansound8k(scorer, args.root, args.normal_classes, args.test_fold, _warn)
    else:
        if not normal or not anomalous:
            raise DataError("eval: give --normal DIR and --anomalous DIR (or --dataset urbansound8k --root DIR)")
        labelled = evaluation.eval_folders(scorer, normal, anomalous, _warn)
    result = labelled.result(bundle.bundle_id, bundle.threshold)
    if machine:
        result["machine"] = machine
    if args.plot:
        from sentinel.plots import roc_plot

        roc_plot(labelled.y, labelled.scores, bundle.threshold, args.plot, title=f"bundle {bundle.bundle_id}")
        result["plot"] = str(args.plot)
    if args.format == "json":
        print(json.dumps(result))
    else:
        if machine:
            print(f"machine {machine}")
        evaluation.print_table(result)
    return result


COMMANDS = {"train": cmd_train, "refit": cmd_refit, "calibrate": cmd_calibrate, "score": cmd_score, "eval": cmd_eval,
            **cli_daemon.COMMANDS, **cli_learn.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from sentinel.logs import configure

    configure("debug" if args.debug else args.log_level)
    try:
        return int(COMMANDS[args.command](args))
    except SentinelError as e:
        if args.debug:
            traceback.print_exc()
        for line in str(e).splitlines():
            print(f"sentinel: error: {line}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sentinel: interrupted", file=sys.stderr)
        return 130
