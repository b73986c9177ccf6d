"""The `sentinel` command line: flags, their types and help. cli.py dispatches."""

from __future__ import annotations

import argparse

from sentinel import __version__


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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
    t.add_argument("--data", action="append", metavar="[NAME=]DIR",
                   help="folder, file or glob of normal recordings (repeatable); NAME=DIR for each of several "
                   "machines trains one fleet bundle that learns them together (score with --machine NAME)")
    t.add_argument("--outliers", action="append", metavar="DIR",
                   help="fleet bundles: recordings known to be none of the machines (other machines, foreign "
                   "sound; repeatable): the fleet also learns what is not one of its own")
    _dataset_flags(t)
    t.add_argument("--model", choices=["diffusion", "autoencoder"], default="diffusion",
                   help="diffusion (Sentinel's detector, default) or autoencoder (the DCASE 2020 Task 2 baseline, "
                   "for comparisons: same bundle, calibrate, score and eval)")
    t.add_argument("--modality", choices=["audio", "image"], default="audio",
                   help="audio recordings (default) or images: --data is then an MVTec AD category (its "
                   "train/good/ is used) or a folder of normal images")
    t.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    t.add_argument("--config", metavar="FILE", help="YAML training config (configs/train.yaml lists every key; "
                   "default: built-in defaults)")
    t.add_argument("--steps", type=_positive_int, help="optimiser steps (overrides training.steps)")
    t.add_argument("--max-minutes", type=_positive_float, metavar="M", help="wall-clock training budget")
    t.add_argument("--seed", type=int, help="random seed (overrides training.seed)")
    t.add_argument("--device", help="auto, cpu or cuda[:N] (overrides device)")
    t.add_argument("--resume", action="store_true", help="continue from BUNDLE/checkpoint.pt")

    r = sub.add_parser("refit", help="refit a bundle's normal statistics with today's scoring recipe",
                       description="Keep a bundle's trained network and fit its normal statistics again on the "
                       "recordings it was trained on (split as training split them), with today's scoring defaults "
                       "or --config's scoring section; a frame view is trained if the bundle lacks one. Writes a "
                       "new, uncalibrated bundle: calibrate it before `sentinel run`.")
    r.add_argument("bundle", metavar="BUNDLE")
    r.add_argument("--data", action="append", required=True, metavar="[NAME=]DIR",
                   help="the normal recordings the bundle was trained on (repeatable); fleet bundles: NAME=DIR for "
                   "every machine")
    r.add_argument("--out", required=True, metavar="NEW", help="folder for the refitted bundle (not BUNDLE itself)")
    r.add_argument("--config", metavar="FILE", help="YAML training config whose scoring section to use "
                   "(default: built-in defaults)")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")

    c = sub.add_parser("calibrate", help="set the alarm threshold from normal recordings",
                       description="Score normal recordings and store a window threshold in the bundle, "
                       "by a target false-alarm rate (default 1 per hour) or a quantile of normal scores.")
    c.add_argument("bundle", metavar="BUNDLE")
    c.add_argument("--normal", action="append", required=True, metavar="[NAME=]DIR",
                   help="folder, file or glob of normal recordings (repeatable); fleet bundles: NAME=DIR calibrates "
                   "machine NAME (each machine has its own threshold)")
    c.add_argument("--machine", metavar="NAME", help="fleet bundles: the machine --normal DIR is")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--false-alarms-per-hour", type=_positive_float, metavar="R",
                   help="target false alarms per hour of normal audio (default 1)")
    g.add_argument("--quantile", type=_quantile, metavar="Q", help="threshold at this quantile of normal scores")
    c.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")

    s = sub.add_parser("score", help="score recordings window by window",
                       description="Score each recording in overlapping windows. jsonl prints one line per "
                       "window and one per file (file score = the mean of its 3 highest window scores by default, "
                       "the bundle's scoring.file_aggregate; a file is ANOMALOUS when any window is above the "
                       "threshold).")
    s.add_argument("bundle", metavar="BUNDLE")
    s.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or globs")
    s.add_argument("--format", choices=["jsonl", "table"], default="table", help="output format (default table)")
    s.add_argument("--only-anomalies", action="store_true", help="print only windows above the threshold")
    s.add_argument("--plot", metavar="DIR", help="audio bundles: write each file's spectrogram with its window "
                   "scores under it as DIR/<name>_scores.png")
    s.add_argument("--report", metavar="HTML", help="audio bundles: write one self-contained HTML page with every "
                   "file's spectrogram, window scores, threshold and flagged windows")
    s.add_argument("--maps", metavar="DIR", help="image bundles: write each image's anomaly map over it as a PNG here")
    s.add_argument("--machine", metavar="NAME", help="fleet bundles: which of its machines the recordings are")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")

    e = sub.add_parser("eval", help="file-level AUC and pAUC on labelled recordings",
                       description="Score normal and anomalous recordings and report file-level AUC and "
                       "pAUC (max FPR 0.1, as DCASE does), with an optional ROC and histogram plot.")
    e.add_argument("bundle", metavar="BUNDLE")
    e.add_argument("--normal", action="append", metavar="[NAME=]DIR", help="normal recordings (fleet bundles: "
                   "NAME=DIR for machine NAME; each named machine is evaluated, then their mean)")
    e.add_argument("--anomalous", action="append", metavar="[NAME=]DIR", help="anomalous recordings")
    e.add_argument("--machine", metavar="NAME", help="fleet bundles: the machine plain --normal/--anomalous DIRs are")
    _dataset_flags(e)
    e.add_argument("--plot", metavar="PNG", help="write a ROC curve and score histograms here")
    e.add_argument("--format", choices=["json", "table"], default="table", help="output format (default table)")
    e.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")

    r = sub.add_parser("run", help="run the streaming monitor (the built-in demo without --config)",
                       description="Capture every configured source, score sliding windows in batches, and "
                       "publish alerts over ZeroMQ (and to the JSONL journal). With no --config, replays the "
                       "built-in demo recording through the built-in demo bundle. SIGINT/SIGTERM stop it.")
    r.add_argument("--config", metavar="FILE", help="YAML config with sources, daemon and alerts sections "
                   "(configs/sentinel.yaml is a commented example)")

    rc = sub.add_parser("record", help="record normal audio from the configured live sources",
                        description="Capture the configured sources (the daemon's capture code) into FLAC "
                        "segments OUT/<source>/<utc-start>.flac, for `sentinel train --data OUT/<source>`. Run "
                        "again, it goes on from what OUT already holds; Ctrl-C keeps what was heard.")
    rc.add_argument("--config", required=True, metavar="FILE", help="the daemon's config (its sources)")
    rc.add_argument("--source", action="append", metavar="NAME", help="only this source (repeatable; default all)")
    rc.add_argument("--minutes", type=_positive_float, required=True, metavar="M", help="minutes per source")
    rc.add_argument("--out", required=True, metavar="DIR", help="folder of the recordings")
    rc.add_argument("--segment-s", type=_positive_float, default=10.0, metavar="S",
                    help="seconds per FLAC segment (default %(default)s)")

    fb = sub.add_parser("feedback", help="tell the daemon an alert was normal (or undo that)",
                        description="The alert's clip joins its source's normal sounds: the bundle learns to "
                        "score that sound as normal (the network stays), the threshold is recalibrated where "
                        "the source's normal audio is at hand, and the running daemon swaps the new bundle in "
                        "and journals a `feedback` record. Queued under daemon.state_dir: a daemon that is down "
                        "applies it when it starts.")
    fb.add_argument("event_id", metavar="EVENT_ID", help="the alert's event_id (journal, dashboard, MQTT)")
    fb.add_argument("label", nargs="?", default="normal", choices=["normal"], help="what it was: normal")
    fb.add_argument("--undo", action="store_true", help="take back an earlier `normal` for this event")
    fb.add_argument("--config", metavar="FILE", help="the daemon's config (default: the demo's)")
    fb.add_argument("--wait", type=_positive_float, default=120.0, metavar="S",
                    help="wait this long for the daemon to apply it (default %(default)s)")

    k = sub.add_parser("check-config", help="validate a config file",
                       description="Validate a YAML config: print each error as FILE:LINE: key path = value: "
                       "message, and exit 1; or print OK and exit 0.")
    k.add_argument("file", metavar="FILE")
    k.add_argument("--program", choices=["run", "train"], default="run",
                   help="whose config it is: sentinel run's (default) or sentinel train's")

    b = sub.add_parser("subscribe", help="print alerts (and status) as they are published",
                       description="Connect a ZeroMQ SUB socket and print each message as one JSON line "
                       "(with its topic). Topics: alert.<source>, status.<source>, score.<source>.")
    b.add_argument("--endpoint", default="tcp://127.0.0.1:5556", help="publisher endpoint (default %(default)s)")
    b.add_argument("--topic", default="", metavar="PREFIX", help="topic prefix filter, e.g. alert. (default: all)")
    b.add_argument("--count", type=_positive_int, metavar="N", help="exit after N messages")
    b.add_argument("--timeout", type=_positive_float, metavar="S", help="exit after S seconds of silence")
    b.add_argument("--server-key", metavar="FILE", help="the publisher's CURVE public certificate")
    b.add_argument("--client-key", metavar="FILE", help="this client's CURVE certificate with secret key")

    for name, what in (("arm", "arm a source again (or every source): its alerts notify and raise problems"),
                       ("disarm", "disarm a source (or every source): it keeps scoring and journalling, marked "
                        "disarmed, but notifies nobody and raises no Home Assistant problem")):
        a = sub.add_parser(name, help=what.split(":")[0], description=what[0].upper() + what[1:] + ". Kept in "
                           "alerts.arming_file, so it survives a restart; the running daemon follows within a second.")
        a.add_argument("source", nargs="?", metavar="SOURCE", help="a configured source (default: every source)")
        a.add_argument("--config", metavar="FILE", help="the daemon's config (default: the demo's)")
        if name == "disarm":
            a.add_argument("--for", dest="for_", metavar="DURATION",
                           help="re-arm by itself after this long (90s, 15m, 2h, 1d); default: until `sentinel arm`")

    i = sub.add_parser("install-service", help="install the systemd unit and an example config",
                       description="Write ROOT/etc/systemd/system/sentinel.service (running this installation's "
                       "sentinel) and ROOT/etc/sentinel/sentinel.yaml (the commented example; an existing one is "
                       "kept), and print where.")
    i.add_argument("--root", default="/", metavar="DIR", help="file system root to install under (default /)")

    g2 = sub.add_parser("keygen", help="make a CURVE certificate pair for the alert socket",
                        description="Write NAME.key (public) and NAME.key_secret (secret) into DIR, in ZeroMQ's "
                        "certificate format: one for the daemon (alerts.curve_secret_key) and one per client.")
    g2.add_argument("dir", metavar="DIR")
    g2.add_argument("--name", default="sentinel", help="certificate name (default %(default)s)")
    return p
