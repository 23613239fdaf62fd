"""A model's folder, saved by save_pretrained or fetched from the Hugging Face Hub: located, checked before
any compute (its config.json and whole weights), and fingerprinted for the stage keys."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

from align_lab.file_kinds import special
from align_lab.tasks.data_files import is_local

HASH_LIMIT = 64 << 20  # files above this are fingerprinted by size and mtime, not content
SKIP = ["original/*", "*.onnx", "*.msgpack", "*.h5", "*.ot", "*.pth", "*.gguf"]


def resolve_checkpoint(name_or_path: str, key: str, model: bool | None = None) -> str:
    """A local directory for `name_or_path`: the directory itself, or the hub snapshot (downloaded unless
    HF_HUB_OFFLINE=1). Without network and not cached: a one-line error that says so. `model` (default:
    every key but tokenizer): a model's folder, whose config.json names its model_type and whose weights
    are whole."""
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if not (p / "config.json").is_file() and not (p / "tokenizer_config.json").is_file():
            raise ValueError(
                f"{key}={name_or_path}: the folder holds no checkpoint (no config.json or tokenizer files); "
                "pass a folder saved by save_pretrained"
            )
        if key != "tokenizer" if model is None else model:
            check_config(p, key)
            check_weights(p, key)
            check_fits(p, key)
        elif key != "tokenizer" and (p / "config.json").is_file():  # a gguf model's folder
            check_weights(p, key)
        return str(p.resolve())
    if p.exists() or p.is_symlink():  # a file (a checkpoint's state-*.pt, a data file): there, not absent
        kind = special(p) or ("a link to nothing" if not p.exists() else "a file")
        raise ValueError(
            f"{key}={name_or_path}: {kind}, not a folder; pass a folder saved by save_pretrained"
        )
    if is_local(name_or_path):
        raise ValueError(f"{key}={name_or_path}: no such directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
    )

    try:
        return snapshot_download(name_or_path, ignore_patterns=SKIP)
    except HFValidationError:  # ninth hunt: huggingface_hub's own text, naming no key
        raise ValueError(
            f"{key}={name_or_path}: no such directory, and no Hugging Face Hub id (an id is owner/name: "
            "letters, digits, '-', '_', '.'; no revision such as @main); pass a local path or a hub id"
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, OSError, HfHubHTTPError) as e:
        offline = " (HF_HUB_OFFLINE=1 is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        first = (" ".join(str(e).split()) or type(e).__name__).split(". ")[0]  # its first sentence, whole
        first = first if len(first) <= 200 else f"{first[:200]}..."  # (cut at 120: "traffic has ; pass")
        raise ValueError(
            f"{key}={name_or_path}: not a local directory, and fetching it from the Hugging Face Hub "
            f"needs network{offline}: {first}; pass a local path or download it first"
        ) from None


def check_config(folder: Path, key: str) -> None:
    """A model's folder holds a config.json that transformers can read: JSON naming its model_type (a
    tokenizer's folder, or a torn config.json, was a 25-35-frame traceback after the stages: issue 73's
    seventh hunt)."""
    path = folder / "config.json"
    if path.is_dir():  # eighth hunt: said "no config.json"
        raise ValueError(f"{key}={folder}: config.json is a folder, not a file; save the model again")
    if not path.is_file():
        raise ValueError(
            f"{key}={folder}: the folder holds tokenizer files but no config.json, so no model; pass a "
            "folder saved by a model's save_pretrained"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{key}={folder}: config.json is damaged ({' '.join(str(e).split())[:120]}); save the model again"
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ValueError(
            f"{key}={folder}: config.json names no model_type (the model's class); save the model with "
            "save_pretrained"
        )
    from transformers import CONFIG_MAPPING, __version__

    if config["model_type"] not in CONFIG_MAPPING:  # eighth hunt: a KeyError traceback after the stages
        raise ValueError(
            f"{key}={folder}: config.json's model_type {config['model_type']!r} is no model class of "
            f"transformers {__version__}; save the model with save_pretrained"
        )


def check_fits(folder: Path, key: str) -> None:
    """The embedding and LM-head weights in a model's safetensors files have the [vocab_size, hidden_size]
    its config.json gives (a config.json edited, or another model's: a 27-frame `ignore_mismatched_sizes`
    traceback after the stages, eighth hunt); headers only. A config without those two keys (a composite
    model's) is checked by its own load."""
    from safetensors import safe_open

    config = json.loads((folder / "config.json").read_text())
    vocab, hidden = config.get("vocab_size"), config.get("hidden_size")
    if not isinstance(vocab, int) or not isinstance(hidden, int):
        return
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as saved:
            for name in saved.keys():
                if not name.endswith(("embed_tokens.weight", "lm_head.weight")):
                    continue
                shape = list(saved.get_slice(name).get_shape())
                if shape != [vocab, hidden]:
                    raise ValueError(
                        f"{key}={folder}: {file.name} holds {name} of shape {shape}, where its config.json "
                        f"makes it [{vocab}, {hidden}] (vocab_size, hidden_size); save the model again with "
                        "save_pretrained"
                    )


WEIGHTS = ("model.safetensors", "model-*.safetensors", "pytorch_model.bin", "pytorch_model-*.bin")


def check_weights(folder: Path, key: str) -> None:
    """Before any compute: a model folder holds its weights, and each weight file is whole (a
    safetensors header that its file's length agrees with; a torch zip whose central directory is
    there). Reads headers only, so a 540 MB checkpoint costs milliseconds."""
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise ValueError(
            f"{key}={folder}: the folder holds config.json but no weights (none of {', '.join(WEIGHTS)}); "
            "save the model with save_pretrained"
        )
    for index in folder.glob("*.index.json"):  # a sharded checkpoint: every shard it names is there
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{key}={folder}: {index.name} is damaged ({type(e).__name__}: {e})") from None
        missing = sorted(s for s in shards if not (folder / s).is_file())
        if missing:
            raise ValueError(f"{key}={folder}: {index.name} names {missing[0]}, which is missing")
    for f in files:
        problem = weight_file_problem(f)
        if problem:
            raise ValueError(f"{key}={folder}: {f.name} is damaged ({problem}); save the model again")


def weight_file_problem(path: Path) -> str | None:
    """Why a weight file cannot be loaded (truncated, not a weight file), or None."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt"):
                return None
        except (SafetensorError, OSError) as e:
            return " ".join(str(e).split())[:160] or type(e).__name__
    import zipfile

    try:
        with zipfile.ZipFile(path):
            return None
    except (zipfile.BadZipFile, OSError) as e:
        return f"not a whole torch file: {e}"


def directory_fingerprint(path: str) -> str:
    """sha256 over the files of a checkpoint: content for small files, size and mtime for big ones."""
    digest = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if not f.is_file():
            continue
        stat = f.stat()
        digest.update(str(f.relative_to(path)).encode())
        if stat.st_size > HASH_LIMIT:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        else:
            digest.update(f.read_bytes())
    return digest.hexdigest()


@contextmanager
def load_report_held(hold: bool = True):
    """transformers' warnings while a model loads (its load report: missing tensors, a tied weight it
    could not find), held until check_loaded has judged the model: a refusal's one line says what they
    would (fifteenth hunt: 19 lines of "newly initialized ... Consider training on your downstream task"
    came first); `let_out` shows them where the model passed. Yields the held records."""
    import logging

    library, held = logging.getLogger("transformers"), []
    handler = logging.Handler()
    handler.emit = held.append
    saved, propagate = library.handlers[:], library.propagate
    library.handlers, library.propagate = ([handler], False) if hold else (saved, propagate)
    try:
        yield held
    finally:
        library.handlers, library.propagate = saved, propagate


def let_out(held: list) -> None:
    """The warnings load_report_held kept, shown as transformers would have."""
    import logging

    for record in held:
        logging.getLogger(record.name).handle(record)


def check_loaded(
    model, info: dict, path: str, key: str = "model.name_or_path", teacher: bool = False
) -> None:
    """A causal LM loaded whole: transformers' loading info names no weight the checkpoint lacks (ninth
    hunt: a teacher whose weights lacked one layer's tensor distilled a random layer, said only in
    transformers' load report), and every weight is finite (tenth hunt: one NaN was reported as "diverged
    ... lower algo.lr"). One line (ConfigError) naming the folder and the weights."""
    from align_lab.value_checks import ConfigError

    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ConfigError(
            f"{key}={path}: its weights lack {len(missing)} of the model's tensors ({shown}), which would "
            "start random; save the model again (save_pretrained) or pass another folder"
        )
    for name, weight in model.named_parameters():
        if not weight.isfinite().all():
            raise ConfigError(
                f"{key}={path}: its weight {name} holds {int((~weight.isfinite()).sum())} non-finite values "
                "(NaN or inf); the model cannot be used: save it again from a model whose weights are finite"
            )
    if (problem := output_problem(model, teacher)) is not None:
        raise ConfigError(
            f"{key}={path}: {problem}; save it again from a model that generates, or pass another"
        )


FLAT_LOGITS = 1e-4  # a policy's logits' spread below it at every place: equal, whatever the input
NEAR_UNIFORM = 1e-3  # nats: a teacher's KL to uniform below it at every place (a random init: ~0.02)


def output_problem(model, teacher: bool = False) -> str | None:
    """What is wrong with a causal LM's next-token logits on 8 tokens, or None: not finite, or equal for
    every token at every place (eleventh hunt: weights all zero, or scaled by 1e30; a policy so saved
    trains on no signal; twelfth: final norm x1e-7, spread 2e-8). A `teacher` must teach: a distribution
    within NEAR_UNIFORM nats of uniform at every place is refused too (thirteenth hunt: final norm x1e-3,
    x1e-2, spreads 2e-4 and 2e-3), where a policy that near uniform is a small random init that SFT trains
    (fourteenth hunt: initializer_range 0.002 was refused). One forward of 8 tokens, no gradient."""
    import math

    import torch

    size = model.get_input_embeddings().weight.shape[0]
    ids = torch.arange(1, 9).remainder(size).unsqueeze(0)  # (1, 8)
    with torch.no_grad():
        logits = model(input_ids=ids.to(model.device)).logits.float()  # (1, 8, V)
    if not logits.isfinite().all():
        return "its next-token logits are not finite (NaN or inf) on 8 tokens, though its weights are"
    if (logits.std(dim=-1) < FLAT_LOGITS).all():
        return (
            f"its next-token logits are equal (within {FLAT_LOGITS:g}) for every token at every place of 8 "
            "tokens (a uniform distribution, whatever the input: weights all zero, or scaled past what its "
            "norms keep)"
        )
    logp = logits.log_softmax(dim=-1)  # (1, 8, V)
    to_uniform = math.log(logits.shape[-1]) + (logp.exp() * logp).sum(dim=-1)  # (1, 8) KL(p || uniform)
    if teacher and (to_uniform < NEAR_UNIFORM).all():
        return (
            f"its next-token distributions are uniform in effect at every place of 8 tokens (KL to uniform "
            f"{float(to_uniform.max()):.2g} nats at most, below {NEAR_UNIFORM:g}; a trained model's is "
            "nats): a teacher that teaches nothing (never trained, or its weights scaled past what its norms "
            "keep)"
        )
    return None


def off_disk(model):
    """`model` with its weights copied out of the files they were loaded from, one tensor at a time:
    transformers maps a safetensors file into memory, and a file truncated under the running run (a
    cleanup script, a quota tool) killed the run with SIGBUS as it next read a weight, saying nothing
    (seventeenth hunt, case 59). Tied weights stay tied (one parameter object)."""
    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.data = tensor.data.clone()
    return model
