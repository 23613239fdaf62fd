"""reward=combined's sources that are one source whose weights cancel: every response scores 0."""

from __future__ import annotations


def check_not_cancelling(components: dict) -> None:
    """Sources that are one source (the same settings) whose weights sum to 0, every one of them: every
    response scores 0 (`wc` 0.01 and the default `brevity` -0.01, both word_count: eighth hunt)."""
    by_source: dict[object, list[str]] = {}
    for name, c in components.items():
        by_source.setdefault(same_source(c["source"]), []).append(name)
    sums = {tuple(names): sum(components[n]["weight"] for n in names) for names in by_source.values()}
    if len(sums) < len(components) and all(abs(total) < 1e-12 for total in sums.values()):
        names = next(n for n in sums if len(n) > 1)
        weights = ", ".join(f"{n}={components[n]['weight']}" for n in names)
        raise ValueError(
            f"components: {' and '.join(names)} are one source whose weights cancel ({weights}), so every "
            "response scores 0 and nothing trains; give them weights that do not sum to 0"
        )


def same_source(source) -> object:
    """What makes two sources one: their settings, a function's by the function it loaded (fifty-second hunt,
    case 25: a module of yours re-exporting word_count beside the default brevity cancelled, unseen)."""
    fn = getattr(source, "_fn", None)
    if fn is None:
        return repr(source)
    return (type(source).__name__, id(fn), getattr(source, "timeout_s", None))
