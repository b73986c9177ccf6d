"""User-facing errors. Each carries a one-line message that names the thing and what to do."""

from __future__ import annotations


class SentinelError(Exception):
    """Base class: the CLI prints `str(err)` on one line and exits non-zero."""

    exit_code = 2


class ConfigError(SentinelError):
    """A config file or key is wrong."""


class AudioError(SentinelError):
    """An audio file cannot be read or is unusable (empty, too short, corrupt)."""


class BundleError(SentinelError):
    """A model bundle is missing, incomplete or does not match this code."""


class DataError(SentinelError):
    """A data folder holds nothing usable."""
