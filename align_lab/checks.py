"""The one-line configuration errors every layer raises; imports nothing, so any module can use it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration, reported as one line before any compute starts."""


def check(ok: bool, name: str, value, allowed: str) -> None:
    """Raises the one-line error every config check uses: `name=value: must be allowed`.

    A ValueError, not a ConfigError: config.build() prefixes the component's key (`algo.clip=...`)."""
    if not ok:
        raise ValueError(f"{name}={value}: must be {allowed}")
