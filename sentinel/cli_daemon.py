"""The daemon's commands: run it, check its config, listen to it, key it, arm and disarm its
sources, install it as a service. Each returns an exit code; cli.py dispatches."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from sentinel.errors import ConfigError


def cmd_run(args: argparse.Namespace) -> int:
    from sentinel.config import load_config
    from sentinel.service.daemon import Daemon

    daemon = Daemon(load_config(args.config), args.config)
    daemon.install_signal_handlers()
    return daemon.run()


def cmd_keygen(args: argparse.Namespace) -> int:
    import zmq.auth

    Path(args.dir).mkdir(parents=True, exist_ok=True)
    print(json.dumps(dict(zip(("public", "secret"), zmq.auth.create_certificates(args.dir, args.name), strict=True))))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from sentinel.errors import ConfigError

    try:
        if args.program == "train":
            from sentinel.training.config import load_train_config

            load_train_config(args.file)
            print(f"{args.file}: OK (training config)")
        else:
            from sentinel.config import load_config

            print(f"{args.file}: OK ({len(load_config(args.file).sources)} sources)")
    except ConfigError as e:
        print(str(e))
        return 1
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


def _arming(args: argparse.Namespace):
    from sentinel.alerts.arming import Arming
    from sentinel.config import load_config

    cfg = load_config(args.config)
    if args.source is not None and args.source not in {s.name for s in cfg.sources}:
        raise ConfigError(f"{args.source}: no such source in {args.config or 'the demo config'} "
                          f"(sources: {', '.join(s.name for s in cfg.sources)})")
    return Arming(cfg.alerts.arming_file), cfg


def _print_arming(arming, cfg) -> None:
    for s in cfg.sources:
        until = arming.disarmed_until(s.name)
        state = "armed" if until is None else ("disarmed" if until == float("inf") else
                                              f"disarmed for {until - arming.clock():.0f} s more")
        print(json.dumps({"source": s.name, "armed": until is None, "state": state}))


def cmd_disarm(args: argparse.Namespace) -> int:
    from sentinel.alerts.arming import parse_duration

    arming, cfg = _arming(args)
    try:
        seconds = parse_duration(args.for_) if args.for_ else None
    except ValueError as e:
        raise ConfigError(f"--for {e}") from None
    arming.disarm(args.source, seconds, by="cli")
    _print_arming(arming, cfg)
    return 0


def cmd_arm(args: argparse.Namespace) -> int:
    arming, cfg = _arming(args)
    arming.arm(args.source)
    _print_arming(arming, cfg)
    return 0


def cmd_install_service(args: argparse.Namespace) -> int:
    """The unit (pointing at this installation's `sentinel`) and the example config, under --root."""
    from importlib.resources import files

    from sentinel.config import example_yaml

    root = Path(args.root)
    exe = shutil.which("sentinel", path=str(Path(sys.executable).parent)) or shutil.which("sentinel")
    if exe is None:
        raise ConfigError("install-service: no `sentinel` executable beside this Python; install the package first")
    unit = files("sentinel.service").joinpath("sentinel.service").read_text()
    unit = unit.replace("/opt/sentinel/venv/bin/sentinel", exe)
    unit_path = root / "etc/systemd/system/sentinel.service"
    config_path = root / "etc/sentinel/sentinel.yaml"
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    unit_path.write_text(unit)
    kept = config_path.exists()
    if not kept:
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(example_yaml())
    print(json.dumps({"unit": str(unit_path), "config": str(config_path), "config_kept": kept, "sentinel": exe}))
    if root == Path("/") and shutil.which("systemctl"):
        subprocess.run(["systemctl", "daemon-reload"], check=False)
    print(f"sentinel: add your sources and daemon.bundle to {config_path}, check it with `sentinel check-config "
          f"{config_path}`, then `systemctl enable --now sentinel`", file=sys.stderr)
    return 0


COMMANDS = {"run": cmd_run, "check-config": cmd_check_config, "subscribe": cmd_subscribe, "keygen": cmd_keygen,
            "arm": cmd_arm, "disarm": cmd_disarm, "install-service": cmd_install_service}
