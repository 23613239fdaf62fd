"""YAML parsed once a test process (tests/conftest.py's, and what tests/forked_cli.py forks commands from)."""

from __future__ import annotations

import copy
import functools
import io


def parse_yaml_once() -> None:
    """Hydra reads and parses every YAML file a composition names again at each composition (~8% of its
    CPU; the tests compose thousands): in a test process each file's text is parsed once, and every load
    still builds a fresh config from a copy of what was parsed (a changed file is a new text)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf._utils import get_yaml_loader

    load = OmegaConf.load
    parsed = functools.lru_cache(maxsize=4096)(lambda text: yaml.load(text, Loader=get_yaml_loader()))

    def load_once(file_):
        if not hasattr(file_, "read"):
            return load(file_)
        text = file_.read()
        obj = parsed(text)
        if not isinstance(obj, (dict, list)):  # empty, or a scalar: as OmegaConf reads it
            return load(io.StringIO(text))
        return OmegaConf.create(copy.deepcopy(obj))

    OmegaConf.load = staticmethod(load_once)
