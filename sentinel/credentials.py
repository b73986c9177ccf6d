"""Secrets named in the config: a file path, or credential:NAME for one that systemd passed in
$CREDENTIALS_DIRECTORY (LoadCredential=), so no secret has to sit in the config file."""

from __future__ import annotations

import os
from pathlib import Path

from sentinel.errors import ConfigError


def credential_path(value: str | None, key: str) -> str | None:
    """The file behind `value` (a path, or credential:NAME); `key` names the config key in errors."""
    if value is None or not value.startswith("credential:"):
        return value
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ConfigError(f"{key} {value!r}: no $CREDENTIALS_DIRECTORY; add LoadCredential= to the unit "
                          "or give the value itself")
    return os.path.join(directory, value.removeprefix("credential:"))


def secret_value(value: str | None, key: str) -> str | None:
    """A secret given inline, or read from credential:NAME (surrounding whitespace dropped)."""
    if value is None or not value.startswith("credential:"):
        return value
    path = credential_path(value, key)
    assert path is not None
    try:
        return Path(path).read_text().strip()
    except OSError as e:
        raise ConfigError(f"{key} {value!r}: cannot read {path} ({e.strerror})") from None
