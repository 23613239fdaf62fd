"""The one-line errors every layer raises (bad configuration, diverged training); imports nothing, so any
module can use it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration, reported as one line before any compute starts."""


class Diverged(RuntimeError):
    """Training produced a non-finite number (a gradient, a loss, the policy's logits): nothing is
    stepped into or cached with it, and the run stops in one line naming the key to lower."""


def check(ok: bool, name: str, value, allowed: str) -> None:
    """Raises the one-line error every config check uses: `name=value: must be allowed`.

    A ValueError, not a ConfigError: config.build() prefixes the component's key (`algo.clip=...`)."""
    if not ok:
        raise ValueError(f"{name}={value}: must be {allowed}")
