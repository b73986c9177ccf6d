#!/usr/bin/env bash
# Debian packages the live-source tests need; installs only what is missing (needs root or sudo).
#   libportaudio2                         sounddevice's native library (its Linux wheel ships none)
#   pulseaudio, -utils, libasound2-plugins  a private PulseAudio null sink stands in for a sound card
#   gst-rtsp-server + plugins, python3-gi   a real RTSP server on 127.0.0.1
#   mosquitto, openssl                    a real MQTT broker (plain, TLS, password) on 127.0.0.1
#   chromium                              a real browser for the dashboard test (driven by Playwright)
#   systemd                               systemd-analyze checks the unit
# Under CI=true a package that cannot be installed fails the run: the tests that need it would
# otherwise fail later with less to go on (a skip is a failure there too, tests/helpers/no_skip_in_ci.py).
set -euo pipefail
PACKAGES="libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins gir1.2-gst-rtsp-server-1.0
gstreamer1.0-plugins-base gstreamer1.0-plugins-good python3-gi mosquitto openssl
chromium fonts-dejavu-core systemd"
missing() { for p in $PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done; }
todo=$(missing)
[ -z "$todo" ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "system-deps: no apt-get; install the equivalents of: $todo" >&2
    case "${CI:-}" in true|1|yes) exit 1 ;; esac
    echo "system-deps: the tests that need them will be skipped" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $todo >/dev/null
still=$(missing)
if [ -n "$still" ]; then
    echo "system-deps: still missing after apt-get install: $still" >&2
    exit 1
fi
