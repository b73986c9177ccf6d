"""The `sentinel` command: parse, load config, dispatch; every command returns an exit code."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentinel import __version__
from sentinel.errors import DataError, SentinelError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _warn(msg: str) -> None:
    print(f"sentinel: warning: {msg}", file=sys.stderr, flush=True)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return v


def _quantile(text: str) -> float:
    v = _positive_float(text)
    if not v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return v


# -- shared helpers ----------------------------------------------------------------------------
@dataclass
class _Scored:
    path: Path
    starts_s: list[float]
    window_s: float
    scores: np.ndarray
    file_score: float
    """What ranks recordings (ScoringConfig.file_aggregate: AUC, reports)."""

    @property
    def peak(self) -> float:
        """The highest window score: a recording is flagged when any window crosses the threshold,
        as the daemon alerts on one window, whatever the file aggregate."""
        return float(self.scores.max())


def _score_files(bundle, scorer, paths: Sequence[str | Path], must_find: bool = True,
                 tile_short: bool = False) -> list[_Scored]:
    from sentinel.audio import find_audio, load_audio
    from sentinel.errors import AudioError
    from sentinel.scoring.scorer import file_score

    files = find_audio(paths)
    if not files and must_find:
        raise DataError(f"{', '.join(map(str, paths))}: no audio files found")
    out = []
    for f in files:
        try:
            wave = load_audio(f, bundle.features.sample_rate)
        except AudioError as e:
            _warn(f"skipped {e}")
            continue
        if wave.numel() < bundle.features.window_samples and tile_short:
            # Dataset clips shorter than a window are repeated to fill it (silence would look anomalous).
            wave = wave.repeat(-(-bundle.features.window_samples // wave.numel()))[: bundle.features.window_samples]
        if wave.numel() < bundle.features.window_samples:
            _warn(f"skipped {f}: {wave.numel() / bundle.features.sample_rate:.2f} s is shorter than one "
                  f"window ({bundle.features.window_seconds:.2f} s)")
            continue
        res = scorer.score_recording(wave)
        scores = res.scores.numpy()
        agg = file_score(res.scores, scorer.config.file_aggregate)
        out.append(_Scored(f, res.starts_s, res.window_s, scores, agg))
    return out


def _load(bundle_path: str, device: str):
    from sentinel.bundle import load_bundle
    from sentinel.devices import resolve_device

    dev = resolve_device(device)
    bundle = load_bundle(bundle_path)
    return bundle, bundle.scorer(dev)


# -- commands ----------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from sentinel.config import load_config
    from sentinel.devices import resolve_device
    from sentinel.logs import get_logger
    from sentinel.training.trainer import train

    cfg = load_config(args.config)
    overrides = {k: v for k, v in (("steps", args.steps), ("max_minutes", args.max_minutes),
                                   ("seed", args.seed)) if v is not None}
    tcfg = dataclasses.replace(cfg.training, **overrides)
    device = resolve_device(args.device or cfg.device)
    log = get_logger("sentinel.train")
    if args.model == "autoencoder":
        from sentinel.baseline.train import train_autoencoder

        if args.modality == "image":
            raise DataError("train --model autoencoder: the DCASE baseline is for audio; drop --modality image")
        data = _dataset_train_files(args) if args.dataset == "urbansound8k" else args.data
        if not data:
            raise DataError("train: give --data DIR (or --dataset urbansound8k --root DIR)")
        result = train_autoencoder(data, args.out, cfg.autoencoder, device, seed=tcfg.seed,
                                   max_minutes=args.max_minutes, log=log.info,
                                   on_file_error=lambda m: _warn(f"skipped {m}"))
    elif args.modality == "image":
        from sentinel.image.train import train_images

        if args.dataset == "mvtec" and args.root:
            args.data = [args.root]
        if args.dataset == "urbansound8k" or not args.data:
            raise DataError("train --modality image: give --data DIR (an MVTec AD category or a folder of "
                            "normal images)")
        result = train_images(
            data=args.data, out=args.out, spec=cfg.image, map_config=cfg.image_map, model_config=cfg.model,
            scheduler_config=cfg.scheduler, scoring=cfg.scoring, config=tcfg, device=device,
            resume=args.resume, log=log.info, on_file_error=lambda m: _warn(f"skipped {m}"),
        )
    else:
        if args.dataset == "mvtec":
            raise DataError("train --dataset mvtec: add --modality image (MVTec AD holds images)")
        data = _dataset_train_files(args) if args.dataset == "urbansound8k" else args.data
        if not data:
            raise DataError("train: give --data DIR (or --dataset urbansound8k --root DIR)")
        result = train(
            data=data, out=args.out, features=cfg.features, model_config=cfg.model,
            scheduler_config=cfg.scheduler, scoring=cfg.scoring, config=tcfg, device=device,
            resume=args.resume, log=log.info, on_file_error=lambda m: _warn(f"skipped {m}"),
        )
    if result.bundle is None:  # a non-zero rank of a distributed run: rank 0 reports
        return 0
    print(json.dumps({"bundle": str(args.out), "bundle_id": result.bundle.bundle_id, "steps": result.steps,
                      "seconds": round(result.seconds, 1), "final_loss": round(result.final_loss, 5)}))
    return 0


def _us8k_split(args: argparse.Namespace):
    """The UrbanSound8K clips under --root and the normal class IDs, checked once for train and eval."""
    from sentinel.training import urbansound8k as us8k

    if not args.root:
        raise DataError("--dataset urbansound8k needs --root DIR (the folder with metadata/ and audio/)")
    return us8k.read_metadata(args.root), us8k.parse_classes(args.normal_classes or us8k.DEFAULT_NORMAL)


def _dataset_train_files(args: argparse.Namespace) -> list[Path]:
    from sentinel.training import urbansound8k as us8k

    clips, normal_ids = _us8k_split(args)
    files = us8k.train_files(clips, normal_ids, args.test_fold)
    if not files:
        raise DataError(f"{args.root}: no normal-class clips outside fold {args.test_fold}")
    return files


def _auc_pauc(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {"auc": float(roc_auc_score(y, s)), "pauc": float(roc_auc_score(y, s, max_fpr=0.1))}


def _eval_urbansound8k(args: argparse.Namespace, bundle, scorer) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Labels, file scores and peak window scores of the test fold, plus the protocol and a
    per-anomalous-class table."""
    from sentinel.training import urbansound8k as us8k

    all_clips, normal_ids = _us8k_split(args)
    clips = us8k.test_clips(all_clips, args.test_fold)
    by_path = {c.path: c for c in clips}
    scored = _score_files(bundle, scorer, [c.path for c in clips], tile_short=True)
    y = np.array([by_path[r.path].class_id not in normal_ids for r in scored], dtype=int)
    s = np.array([r.file_score for r in scored])
    if y.min() == y.max():
        raise DataError(f"fold {args.test_fold} needs both normal and anomalous clips to evaluate")
    per_class = {}
    for cid in sorted({by_path[r.path].class_id for r in scored} - normal_ids):
        keep = np.array([by_path[r.path].class_id in normal_ids | {cid} for r in scored])
        per_class[us8k.CLASSES[cid]] = {**_auc_pauc(y[keep], s[keep]), "n": int(y[keep].sum())}
    extra = {"normal_classes": [us8k.CLASSES[i] for i in sorted(normal_ids)], "test_fold": args.test_fold,
             "per_class": per_class}
    return y, s, np.array([r.peak for r in scored]), extra


def _warn_if_training_images(bundle, normal: Sequence[str]) -> None:
    """The network (and the patch memory) saw the training images: they score lower than unseen
    normal ones, so a threshold set on them flags too many good images."""
    trained = []
    for d in bundle.training.get("data", []):
        p = Path(d).resolve()
        trained += [p, p / "train" / "good"]
    for n in normal:
        if Path(n).resolve() in trained:
            _warn(f"calibrate: {n} holds the bundle's training images, which score lower than unseen ones; "
                  "calibrate on held-out normal images (training already set a threshold on its held-out share)")
            return


def cmd_calibrate(args: argparse.Namespace) -> int:
    from sentinel.bundle import write_meta
    from sentinel.scoring.calibration import calibrate

    bundle, scorer = _load(args.bundle, args.device)
    if bundle.modality == "image":
        if args.false_alarms_per_hour is not None:
            raise DataError("calibrate: an image bundle has no time axis; use --quantile Q (default 0.99)")
        _warn_if_training_images(bundle, args.normal)
        images = _score_images(bundle, scorer, args.normal)
        scores = np.array([r.score for r in images])
        n_files, rate, quantile = len(images), None, args.quantile or 0.99
    else:
        scored = _score_files(bundle, scorer, args.normal)
        if not scored:
            raise DataError(f"{', '.join(args.normal)}: no readable normal recordings to calibrate on")
        scores = np.concatenate([s.scores for s in scored])
        n_files, quantile = len(scored), args.quantile
        rate = None if args.quantile is not None else (args.false_alarms_per_hour or 1.0)
    try:
        cal = calibrate(scores, scorer.config.hop_seconds, n_files, false_alarms_per_hour=rate,
                        quantile=quantile)
    except ValueError as e:
        raise DataError(f"calibration: {e}") from None
    bundle.calibration = cal
    write_meta(bundle)
    flagged = int((scores > cal.threshold).sum())
    print(json.dumps({"bundle": str(args.bundle), "threshold": round(cal.threshold, 4), "method": cal.method,
                      "target": cal.target, "normal_windows": cal.n_windows, "normal_files": cal.n_files,
                      "normal_windows_above": flagged}))
    return 0


def _score_images(bundle, scorer, paths: Sequence[str | Path], with_maps: bool = False) -> list:
    from sentinel.image.io import find_images
    from sentinel.image.maps import score_images

    files = find_images(paths)
    if not files:
        raise DataError(f"{', '.join(map(str, paths))}: no image files found (png, jpg, ...)")
    scored = score_images(scorer, files, bundle.spec.size, with_maps, on_error=lambda m: _warn(f"skipped {m}"))
    if not scored:
        raise DataError(f"{', '.join(map(str, paths))}: none of the images is readable")
    return scored


def _score_image_command(args: argparse.Namespace, bundle, scorer) -> int:
    from sentinel.image.maps import save_overlay

    thr = bundle.threshold
    started = time.perf_counter()
    scored = _score_images(bundle, scorer, args.paths, with_maps=bool(args.maps))
    elapsed = time.perf_counter() - started
    flag = (lambda s: None) if thr is None else (lambda s: bool(s > thr))
    for r in scored:
        amap = None
        if args.maps:
            amap = str(save_overlay(r.image, r.map, Path(args.maps) / f"{r.path.stem}_map.png"))
        if args.only_anomalies and not flag(r.score):
            continue
        if args.format == "jsonl":
            print(json.dumps({"kind": "image", "file": str(r.path), "score": round(r.score, 4), "threshold": thr,
                              "anomaly": flag(r.score), "map": amap}))
        else:
            print(f"{r.score:8.3f}  {'ANOMALOUS  ' if flag(r.score) else ''}{r.path}{'  -> ' + amap if amap else ''}")
    print(f"sentinel: scored {len(scored)} images in {elapsed:.1f} s", file=sys.stderr)
    return 0


def _plot_scores(bundle, scored: list[_Scored], thr: float | None, folder: Path) -> None:
    """One PNG per file: its spectrogram with the window scores under it."""
    from sentinel.audio import load_audio
    from sentinel.plots import score_plot

    folder.mkdir(parents=True, exist_ok=True)
    sr = bundle.features.sample_rate
    for s in scored:
        out = folder / f"{s.path.stem}_scores.png"
        score_plot(load_audio(s.path, sr).numpy(), sr, s.starts_s, s.window_s, s.scores, thr, out,
                   title=f"{s.path.name}  file score {s.file_score:.2f}  (bundle {bundle.bundle_id})")
        print(f"sentinel: wrote {out}", file=sys.stderr)


def _write_report(bundle, scored: list[_Scored], thr: float | None, out: Path) -> None:
    """One self-contained HTML page, drawn by the code that draws the dashboard's alert views."""
    from sentinel.audio import load_audio
    from sentinel.render import ReportEntry, html_report, score_figure_png

    sr, entries = bundle.features.sample_rate, []
    for s in scored:
        png = score_figure_png(load_audio(s.path, sr).numpy(), sr, s.starts_s, s.window_s, s.scores, thr,
                               title=f"{s.path.name}  file score {s.file_score:.2f}")
        flagged = [] if thr is None else [(a, a + s.window_s, float(v))
                                          for a, v in zip(s.starts_s, s.scores, strict=True) if v > thr]
        entries.append(ReportEntry(str(s.path), s.file_score, thr, png, flagged))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html_report(entries, bundle.bundle_id, thr), encoding="utf-8")
    except OSError as e:
        raise DataError(f"--report {out}: cannot write ({e.strerror}); pick a writable path") from None
    print(f"sentinel: wrote {out}", file=sys.stderr)


def cmd_score(args: argparse.Namespace) -> int:
    bundle, scorer = _load(args.bundle, args.device)
    if bundle.modality == "image":
        if args.report:
            raise DataError("score --report: the HTML report is for audio bundles; use --maps DIR for images")
        return _score_image_command(args, bundle, scorer)
    if args.maps:
        raise DataError("score --maps: anomaly maps are for image bundles; this one scores audio")
    thr = bundle.threshold
    started = time.perf_counter()
    scored = _score_files(bundle, scorer, args.paths)
    elapsed = time.perf_counter() - started
    if not scored:
        raise DataError("no file could be scored; see the warnings above")
    if args.plot:
        _plot_scores(bundle, scored, thr, Path(args.plot))
    if args.report:
        _write_report(bundle, scored, thr, Path(args.report))
    flag = (lambda s: None) if thr is None else (lambda s: bool(s > thr))
    out = sys.stdout
    if args.format == "jsonl":
        for s in scored:
            for start, score in zip(s.starts_s, s.scores.tolist(), strict=True):
                if args.only_anomalies and not flag(score):
                    continue
                out.write(json.dumps({"kind": "window", "file": str(s.path), "start_s": round(start, 3),
                                      "end_s": round(start + s.window_s, 3), "score": round(score, 4),
                                      "threshold": thr, "anomaly": flag(score)}) + "\n")
            out.write(json.dumps({"kind": "file", "file": str(s.path), "score": round(s.file_score, 4),
                                  "anomaly": flag(s.peak)}) + "\n")
    else:
        thr_text = "uncalibrated" if thr is None else f"{thr:.3f}"
        out.write(f"bundle {bundle.bundle_id}  threshold {thr_text}\n")
        for s in scored:
            out.write(f"\n{s.path}  file score {s.file_score:.3f}"
                      f"{'  ANOMALOUS' if flag(s.peak) else ''}\n")
            out.write(f"  {'start s':>8} {'end s':>8} {'score':>8}\n")
            for start, score in zip(s.starts_s, s.scores.tolist(), strict=True):
                if args.only_anomalies and not flag(score):
                    continue
                mark = "  <-- anomaly" if flag(score) else ""
                out.write(f"  {start:8.2f} {start + s.window_s:8.2f} {score:8.3f}{mark}\n")
    audio_s = sum(s.starts_s[-1] + s.window_s for s in scored)
    print(f"sentinel: scored {audio_s:.1f} s of audio in {elapsed:.1f} s "
          f"(real-time factor {audio_s / max(elapsed, 1e-9):.1f})", file=sys.stderr)
    return 0


def _eval_images(args: argparse.Namespace, bundle, scorer) -> tuple[np.ndarray, np.ndarray, dict]:
    """Image AUROC (and per defect), plus pixel AUROC and PRO over the images that have masks."""
    from sentinel.image import evaluation, mvtec
    from sentinel.image.io import find_images

    if args.dataset == "mvtec":
        if not args.root:
            raise DataError("--dataset mvtec needs --root DIR (an MVTec AD category with train/ test/ ground_truth/)")
        items = mvtec.test_images(args.root)
    elif args.dataset == "folder" and args.normal and args.anomalous:
        items = [mvtec.TestImage(p, mvtec.GOOD, None) for p in find_images(args.normal)]
        items += [mvtec.TestImage(p, "anomalous", None) for p in find_images(args.anomalous)]
    else:
        raise DataError("eval on images: give --dataset mvtec --root DIR, or --normal DIR and --anomalous DIR")
    info = {t.path: t for t in items}
    missing = [t for t in items if t.anomalous and t.mask is None]
    if missing and args.dataset == "mvtec":
        _warn(f"{len(missing)} defect images have no ground_truth mask (e.g. {missing[0].path}); "
              "they count for image AUROC only")
    with_masks = any(t.mask is not None for t in items)
    scored = _score_images(bundle, scorer, [t.path for t in items], with_maps=with_masks)
    kept = [info[r.path] for r in scored]
    s = np.array([r.score for r in scored])
    try:
        res = evaluation.evaluate(kept, s, [r.map.numpy() for r in scored] if with_masks else None,
                                  bundle.spec.size, on_error=_warn)
    except ValueError as e:
        raise DataError(f"eval: {e} (readable ones)") from None
    y = np.array([t.anomalous for t in kept], dtype=int)
    extra = {k: res[k] for k in ("per_class", "pixel_auc", "pro")}
    return y, s, extra


def cmd_eval(args: argparse.Namespace) -> int:
    bundle, scorer = _load(args.bundle, args.device)
    extra: dict = {}
    if bundle.modality == "image":
        y, s, extra = _eval_images(args, bundle, scorer)
        peaks = s
    elif args.dataset == "mvtec":
        raise DataError("--dataset mvtec: this bundle scores audio; train one with --modality image")
    elif args.dataset == "urbansound8k":
        y, s, peaks, extra = _eval_urbansound8k(args, bundle, scorer)
    else:
        if not args.normal or not args.anomalous:
            raise DataError("eval: give --normal DIR and --anomalous DIR (or --dataset urbansound8k --root DIR)")
        normal = _score_files(bundle, scorer, args.normal)
        anomalous = _score_files(bundle, scorer, args.anomalous)
        if not normal or not anomalous:
            raise DataError("eval needs at least one readable normal and one anomalous recording")
        y = np.array([0] * len(normal) + [1] * len(anomalous))
        s = np.array([r.file_score for r in normal + anomalous])
        peaks = np.array([r.peak for r in normal + anomalous])
    result = {"bundle_id": bundle.bundle_id, **_auc_pauc(y, s), "n_normal": int((y == 0).sum()),
              "n_anomalous": int(y.sum()), **extra}
    result["max_fpr"] = 0.1
    result["threshold"] = bundle.threshold
    if bundle.threshold is not None:
        # flagged = any window above the threshold (what the daemon alerts on)
        result["tpr_at_threshold"] = float((peaks[y == 1] > bundle.threshold).mean())
        result["fpr_at_threshold"] = float((peaks[y == 0] > bundle.threshold).mean())
    if args.plot:
        from sentinel.plots import roc_plot

        roc_plot(y, s, bundle.threshold, args.plot, title=f"bundle {bundle.bundle_id}")
        result["plot"] = str(args.plot)
    if args.format == "json":
        print(json.dumps(result))
    else:
        per_class = result.pop("per_class", None)
        for k, v in result.items():
            print(f"{k:>18}  {v:.4f}" if isinstance(v, float) else f"{k:>18}  {v}")
        if per_class:
            pixels = any("pixel_auc" in r for r in per_class.values())
            print(f"\n{'anomalous class':<18} {'n':>5} {'AUC':>7} {'pAUC':>7}"  # class or defect type
                  + (f" {'px AUC':>7} {'PRO':>7}" if pixels else ""))
            for name, r in per_class.items():
                px = f" {r.get('pixel_auc', float('nan')):7.3f} {r.get('pro', float('nan')):7.3f}" if pixels else ""
                print(f"{name:<18} {r['n']:>5} {r['auc']:7.3f} {r['pauc']:7.3f}{px}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sentinel.config import load_config
    from sentinel.service.daemon import Daemon

    daemon = Daemon(load_config(args.config), args.config)
    daemon.install_signal_handlers()
    return daemon.run()


def cmd_keygen(args: argparse.Namespace) -> int:
    import zmq.auth

    Path(args.dir).mkdir(parents=True, exist_ok=True)
    public, secret = zmq.auth.create_certificates(args.dir, args.name)
    print(json.dumps({"public": public, "secret": secret}))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from sentinel.config import load_config
    from sentinel.errors import ConfigError

    try:
        cfg = load_config(args.file)
    except ConfigError as e:
        print(str(e))
        return 1
    print(f"{args.file}: OK ({len(cfg.sources)} sources)")
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    from sentinel.alerts.publisher import subscribe

    timeout_ms = int(args.timeout * 1000) if args.timeout else None
    stream = subscribe(args.endpoint, args.topic, timeout_ms=timeout_ms, server_public=args.server_key,
                       client_secret=args.client_key)
    for n, (topic, record) in enumerate(stream, start=1):
        print(json.dumps({"topic": topic, **record}), flush=True)
        if args.count and n >= args.count:
            break
    return 0


def _dataset_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["folder", "urbansound8k", "mvtec"], default="folder",
                   help="folder: --data/--normal/--anomalous paths; urbansound8k: the release layout under --root; "
                   "mvtec: an MVTec AD category under --root (eval of image bundles)")
    p.add_argument("--root", metavar="DIR",
                   help="UrbanSound8K folder (with metadata/ and audio/), or an MVTec AD category folder")
    p.add_argument("--normal-classes", action="append", metavar="NAMES",
                   help="UrbanSound8K classes taken as normal, names or IDs, comma-separated "
                   "(default air_conditioner; the rest are anomalous)")
    p.add_argument("--test-fold", type=int, default=10, choices=range(1, 11), metavar="K",
                   help="UrbanSound8K fold held out for evaluation (default 10); the others train")


# -- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="sentinel",
        description="Sentinel: learn what normal sounds like with a diffusion model, then flag what "
        "does not. Train on normal recordings, calibrate a threshold, score or evaluate recordings.",
    )
    p.add_argument("--version", action="version", version=f"sentinel {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log verbosity on stderr (default: info)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model bundle on folders of normal recordings",
                       description="Train the diffusion denoiser on normal recordings (folders are searched "
                       "recursively) and write a bundle: weights.safetensors + bundle.json.")
    t.add_argument("--data", action="append", metavar="DIR",
                   help="folder, file or glob of normal recordings (repeatable)")
    _dataset_flags(t)
    t.add_argument("--model", choices=["diffusion", "autoencoder"], default="diffusion",
                   help="diffusion (Sentinel's detector, default) or autoencoder (the DCASE 2020 Task 2 baseline, "
                   "for comparisons: same bundle, calibrate, score and eval)")
    t.add_argument("--modality", choices=["audio", "image"], default="audio",
                   help="audio recordings (default) or images: --data is then an MVTec AD category (its "
                   "train/good/ is used) or a folder of normal images")
    t.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    t.add_argument("--config", metavar="FILE", help="YAML config (default: built-in defaults)")
    t.add_argument("--steps", type=_positive_int, help="optimiser steps (overrides training.steps)")
    t.add_argument("--max-minutes", type=_positive_float, metavar="M", help="wall-clock training budget")
    t.add_argument("--seed", type=int, help="random seed (overrides training.seed)")
    t.add_argument("--device", help="auto, cpu or cuda[:N] (overrides device)")
    t.add_argument("--resume", action="store_true", help="continue from BUNDLE/checkpoint.pt")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("calibrate", help="set the alarm threshold from normal recordings",
                       description="Score normal recordings and store a window threshold in the bundle, "
                       "by a target false-alarm rate (default 1 per hour) or a quantile of normal scores.")
    c.add_argument("bundle", metavar="BUNDLE")
    c.add_argument("--normal", action="append", required=True, metavar="DIR",
                   help="folder, file or glob of normal recordings (repeatable)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--false-alarms-per-hour", type=_positive_float, metavar="R",
                   help="target false alarms per hour of normal audio (default 1)")
    g.add_argument("--quantile", type=_quantile, metavar="Q", help="threshold at this quantile of normal scores")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    c.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("score", help="score recordings window by window",
                       description="Score each recording in overlapping windows. jsonl prints one line per "
                       "window and one per file (file score = max of its window scores by default).")
    s.add_argument("bundle", metavar="BUNDLE")
    s.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or globs")
    s.add_argument("--format", choices=["jsonl", "table"], default="table", help="output format (default table)")
    s.add_argument("--only-anomalies", action="store_true", help="print only windows above the threshold")
    s.add_argument("--plot", metavar="DIR", help="audio bundles: write each file's spectrogram with its window "
                   "scores under it as DIR/<name>_scores.png")
    s.add_argument("--report", metavar="HTML", help="audio bundles: write one self-contained HTML page with every "
                   "file's spectrogram, window scores, threshold and flagged windows")
    s.add_argument("--maps", metavar="DIR", help="image bundles: write each image's anomaly map over it as a PNG here")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    s.set_defaults(func=cmd_score)

    e = sub.add_parser("eval", help="file-level AUC and pAUC on labelled recordings",
                       description="Score normal and anomalous recordings and report file-level AUC and "
                       "pAUC (max FPR 0.1, as DCASE does), with an optional ROC and histogram plot.")
    e.add_argument("bundle", metavar="BUNDLE")
    e.add_argument("--normal", action="append", metavar="DIR", help="normal recordings")
    e.add_argument("--anomalous", action="append", metavar="DIR", help="anomalous recordings")
    _dataset_flags(e)
    e.add_argument("--plot", metavar="PNG", help="write a ROC curve and score histograms here")
    e.add_argument("--format", choices=["json", "table"], default="table", help="output format (default table)")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("run", help="run the streaming monitor (the built-in demo without --config)",
                       description="Capture every configured source, score sliding windows in batches, and "
                       "publish alerts over ZeroMQ (and to the JSONL journal). With no --config, replays the "
                       "built-in demo recording through the built-in demo bundle. SIGINT/SIGTERM stop it.")
    r.add_argument("--config", metavar="FILE", help="YAML config with sources, daemon and alerts sections")
    r.set_defaults(func=cmd_run)

    k = sub.add_parser("check-config", help="validate a config file",
                       description="Validate a YAML config: print each error as FILE:LINE: key path = value: "
                       "message, and exit 1; or print OK and exit 0.")
    k.add_argument("file", metavar="FILE")
    k.set_defaults(func=cmd_check_config)

    b = sub.add_parser("subscribe", help="print alerts (and status) as they are published",
                       description="Connect a ZeroMQ SUB socket and print each message as one JSON line "
                       "(with its topic). Topics: alert.<source>, status.<source>, score.<source>.")
    b.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="publisher endpoint (default %(default)s)")
    b.add_argument("--topic", default="", metavar="PREFIX", help="topic prefix filter, e.g. alert. (default: all)")
    b.add_argument("--count", type=_positive_int, metavar="N", help="exit after N messages")
    b.add_argument("--timeout", type=_positive_float, metavar="S", help="exit after S seconds of silence")
    b.add_argument("--server-key", metavar="FILE", help="the publisher's CURVE public certificate")
    b.add_argument("--client-key", metavar="FILE", help="this client's CURVE certificate with secret key")
    b.set_defaults(func=cmd_subscribe)

    g2 = sub.add_parser("keygen", help="make a CURVE certificate pair for the alert socket",
                        description="Write NAME.key (public) and NAME.key_secret (secret) into DIR, in ZeroMQ's "
                        "certificate format: one for the daemon (alerts.curve_secret_key) and one per client.")
    g2.add_argument("dir", metavar="DIR")
    g2.add_argument("--name", default="sentinel", help="certificate name (default %(default)s)")
    g2.set_defaults(func=cmd_keygen)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from sentinel.logs import configure

    configure("debug" if args.debug else args.log_level)
    try:
        return int(args.func(args))
    except SentinelError as e:
        if args.debug:
            traceback.print_exc()
        for line in str(e).splitlines():
            print(f"sentinel: error: {line}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sentinel: interrupted", file=sys.stderr)
        return 130
