"""The one line for an override Hydra refuses: a key the config lacks (`unknown_key`: the closest key, the
keys there, how to add one where a `+` can), or a value given where a mapping of keys goes
(`not_a_mapping`). Read by app.py's error formatting."""

from __future__ import annotations


def not_a_mapping(override: str, cause: BaseException) -> str:
    """The one line for a list or a value given to a node of keys (fifteenth hunt: `plan=[1,2]` said
    "Error merging override plan=[1,2]", no reason); `cause`: OmegaConf's "Cannot merge DictConfig with
    ListConfig"."""
    key = getattr(cause, "full_key", "") or override.split("=")[0]
    given = str(cause).split("with ", 1)[-1].split()[0].removesuffix("Config").lower()
    return (
        f"{override}: {key} is a mapping of keys here, not a {given}: set one key ({key}.<key>=...) or the "
        f"whole mapping ('{key}={{<key>: <value>, ...}}')"
    )


def unknown_key(full_key: str, known) -> str:
    """The one line for an override of a key the config lacks (`known`: the node it was set under): the
    closest key, else those there; `+key=...` only for a class of yours (`env._target_=my_envs.Dice`)."""
    import difflib

    from align_lab.aliases import GROUP, RENAMED

    parent, _, name = full_key.rpartition(".")
    keys = sorted(str(k) for k in known if not str(k).startswith("_"))
    node = RENAMED.get(name, "").split(".")[0]
    if parent == GROUP and name in RENAMED and node in keys:  # hydra.sweeper.params, which reads no old name
        return f"{full_key}: is now {GROUP}.{RENAMED[name]}; write the new name here"
    if dotted := [k for k in keys if k.startswith(f"{name}.")]:  # tune.space.rloo.algo.lr=...: "did you
        # mean tune.space.rloo.algo.lr?", what was typed (fifth hunt of 2026-12-04): Hydra splits at the dots
        return (
            f"{full_key}: {parent}'s keys hold dots ({', '.join(dotted)}), which a key=value path splits: "
            f"set {parent} whole, '{parent}={{{dotted[0]}: <value>, ...}}'"
        )
    close = difflib.get_close_matches(name, keys, n=1, cutoff=0.6)
    where = f"{parent}." if parent else ""
    if close:
        return f"{full_key}: unknown key; did you mean {where}{close[0]}?"
    if keys and parent in ("plan", "tune"):  # a mapping given whole: "keys of plan: ..." (2026-12-04, n21)
        return f"{full_key}: not in the {parent} given ({', '.join(keys)}); add it, +{full_key}=<value>"
    if parent == "plan":  # was "keys of plan: " with nothing after it
        return (
            f"{full_key}: unknown key; plan is null here (a fixed sweep), so it has no keys: a sequential "
            "study's plan is set whole, e.g. 'plan={start: 4, wave: 4, max_seeds: 24}' (docs/studies.md)"
        )
    target = str(known.get("_target_") or "") if hasattr(known, "get") else ""
    if not keys and parent and target and not target.startswith("align_lab."):  # env._target_=your.Class
        return (
            f"{full_key}: unknown key; {parent} names a class here and sets none of its fields: add a field "
            f"of that class with a +, +{full_key}=<value> (docs/environments.md)"
        )
    if not keys and parent:  # reward=verifier, which takes no keys
        return (
            f"{full_key}: unknown key; {parent} has no keys to set here (null, or a choice that takes none); "
            f"python -m align_lab --cfg job shows {parent}"
        )
    return f"{full_key}: unknown key; keys{' of ' + parent if parent else ''}: {', '.join(keys)}"
