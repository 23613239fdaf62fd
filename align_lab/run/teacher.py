"""The teacher stage of a distillation (algorithms/distill.py's Teacher part), built after the run's
other stages and cached by content like them: the SFT stage's recipe trained longer (algo.teacher null:
the same cached entry as sft.epochs=algo.teacher_epochs), or a given model copied into the cache under a
key of its files: a folder saved by save_pretrained, a Hugging Face hub id, or a run folder (its last
checkpoint's policy). A teacher must read the policy's tokens: one with another vocabulary is refused in
one line before it is used."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from pathlib import Path

from align_lab.config import ConfigError
from align_lab.run.teacher_run import (
    KEY,
    RETRAIN,
    check_teacher_run,
    finished_teacher,
    is_run_checkpoints,
    is_run_folder,
    run_checkpoints,
)


def vocabulary_problem(teacher_vocab: dict | None, teacher_size: int, vocab: dict, size: int) -> str | None:
    """Why a teacher cannot score the policy's tokens (its vocabulary size, or a token whose id differs),
    or None. `*_vocab`: token -> id (None: the teacher ships no tokenizer; its size is then all we know)."""
    if teacher_size != size:
        return f"its vocabulary has {teacher_size} entries, the policy's {size}"
    if teacher_vocab is not None and teacher_vocab != vocab:
        token = next(
            t for t in sorted(set(vocab) | set(teacher_vocab)) if teacher_vocab.get(t) != vocab.get(t)
        )
        ids = teacher_vocab.get(token), vocab.get(token)
        return f"token {token!r}: id {ids[0]} in its tokenizer, {ids[1]} in the policy's"
    return None


def check_vocabulary(path: str, teacher_vocab: dict | None, teacher_size: int, tokenizer, size: int) -> None:
    """One line naming the teacher at `path` when it does not share the policy's tokenizer (`size`: the
    policy's embedding rows)."""
    problem = vocabulary_problem(teacher_vocab, teacher_size, tokenizer.get_vocab(), size)
    if problem:
        raise ConfigError(
            f"{KEY}={path}: the teacher does not share the policy's tokenizer ({problem}); pick one that does"
        )


def load_given(path: str, model, tokenizer):
    """The teacher model at `path`: a run folder's last checkpoint loaded into the policy's architecture,
    or a checkpoint folder / hub id (models/hf.py resolve_checkpoint). With its tokenizer's vocabulary (or
    None where none is saved)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from align_lab.models.lora import causal_lm
    from align_lab.models.saved import check_loaded, let_out, load_report_held, off_disk, resolve_checkpoint
    from align_lab.train.checkpoint_io import CheckpointError, check_engine_checkpoints, load_checkpoint

    checkpoints = run_checkpoints(path)
    if checkpoints is not None:
        finished_teacher(path)  # admission checked it; the folder may have changed since
        try:
            saved = load_checkpoint(checkpoints, advice=RETRAIN)
            check_engine_checkpoints(saved, checkpoints, advice=RETRAIN)
        except CheckpointError as e:
            raise ConfigError(f"{KEY}={path}: its final {e}") from None
        state = saved["objects"]["policy"]
        if isinstance(state, dict) and set(state) == {"tag"}:  # a DeepSpeed run's (twentieth hunt, case 36)
            state = engine_weights(checkpoints / "deepspeed", state["tag"])
        teacher = adapters_of_run(path).apply(model.init_policy(tokenizer))
        try:
            teacher.load_state_dict(state)
        except RuntimeError as e:
            first = str(e).splitlines()[0][:160]
            raise ConfigError(
                f"{KEY}={path}: its checkpoint's policy does not fit this run's model ({first})"
            ) from None
        # a LoRA run's policy is its base and adapters: merged, the model it sampled from (twentieth
        # hunt, case 18: "does not fit this run's model", its adapters' keys in the state)
        return (teacher.merge_and_unload() if teacher is not causal_lm(teacher) else teacher), None
    folder = resolve_checkpoint(path, KEY)
    vocab = None
    if (Path(folder) / "tokenizer_config.json").is_file():
        vocab = AutoTokenizer.from_pretrained(folder).get_vocab()
    with load_report_held() as held:  # shown once the teacher passed check_loaded
        teacher, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    off_disk(teacher)  # its weights out of the mapped file (models/saved.py)
    check_loaded(teacher, info, path, KEY, teacher=True)
    let_out(held)
    return teacher, vocab


def engine_weights(folder: Path, tag: str) -> dict:
    """The policy's weights in a DeepSpeed run's engine checkpoint `folder/tag`: its ZeRO partitions
    gathered by DeepSpeed's own zero_to_fp32 (stages 1-3), or the module's state (stage 0, no
    partitions). Read as weights, the engine's {"tag": ...} was "does not fit this run's model"."""
    import torch

    if not any((folder / tag).glob("zero_pp_rank_*_optim_states.pt")):
        return torch.load(folder / tag / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with contextlib.redirect_stdout(io.StringIO()):  # its "Reconstructed fp32 state dict with ..." print
        return get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=tag)


def adapters_of_run(path: str):
    """The LoRA adapters a teacher run trained with (its resolved config's `lora`; admission read that
    file), disabled where it trained the whole model."""
    import yaml

    from align_lab.models.lora import LoRA
    from align_lab.run.run_folder import RESOLVED_CONFIG

    saved = yaml.safe_load((Path(path).expanduser() / RESOLVED_CONFIG).read_text()).get("lora") or {}
    fields = {f.name for f in dataclasses.fields(LoRA)}
    try:
        return LoRA(**{k: v for k, v in saved.items() if k in fields})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{KEY}={path}: that run's lora keys cannot be read ({e})") from None


def source_fingerprint(path: str) -> str:
    """What identifies a given teacher's content: its folder's files (models/hf.py directory_fingerprint)."""
    from align_lab.models.saved import directory_fingerprint, resolve_checkpoint

    checkpoints = run_checkpoints(path)
    return directory_fingerprint(str(checkpoints) if checkpoints else resolve_checkpoint(path, KEY))


def with_teacher(stages, teaching, b, sft, env):
    """`stages` (run/stages.py build_stages's) with the teacher stage's result as results["teacher"],
    built (or loaded) by the StageBuild `b` after every other stage; `b` takes the stages' numerics, so
    the SFT-recipe teacher's key is the SFT stage's at sft.epochs=teacher_epochs."""
    from align_lab.run.stages import build_sft

    b.dims = stages.dims
    b.results["tokenizer"] = stages.results.get("tokenizer")  # the policy's tokenizer, in the key
    view = (stages.task, stages.model, sft, stages.tokenizer, stages.policy_task, stages.dims, env)
    build_teacher(teaching, build_sft, b, *view)
    return dataclasses.replace(stages, results={**stages.results, "teacher": b.results["teacher"]})


def build_teacher(teaching, build_sft, b, task, model, sft, tokenizer, policy_task, dims, env) -> Path:
    """The teacher stage (`b` records it as "teacher", the run loads b.results["teacher"].path): `build_sft`
    with teaching.teacher_epochs
    (algo.teacher null), else the given model checked against the policy's vocabulary and saved into the
    cache, keyed by its files and the policy's tokenizer and model."""
    if teaching.teacher is None:
        sft = dataclasses.replace(sft, epochs=teaching.teacher_epochs)
        return build_sft(b, task, model, sft, tokenizer, policy_task, dims, env, record="teacher")
    size = model.hf_config(tokenizer).vocab_size
    tokens = None if model.pretrained else b.results["tokenizer"].key
    inputs = {
        "teacher": source_fingerprint(teaching.teacher),
        "tokenizer": tokens,
        "model": model.fingerprint(),
    }

    def build(out: Path) -> None:
        teacher, vocab = load_given(teaching.teacher, model, tokenizer)
        check_vocabulary(teaching.teacher, vocab, teacher.config.vocab_size, tokenizer, size)
        teacher.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))

    return b.get("teacher", inputs, build)


def runs_in(folder: Path) -> str:
    """Three of a study folder's runs and how many more (it read as the whole list: hunt of 2026-12-04,
    t17), or `none yet`."""
    found = sorted(p.name for p in folder.iterdir() if is_run_folder(p))
    return ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "") or "none yet"


def check_teacher(spec) -> None:
    """At admission, before any compute: the loop can sample from the teacher (SFT-distill, GKD: an engine
    that samples the model it is handed, rollout=hf), a local teacher exists, and its tokens are the policy's:
    a run folder's model and task are this run's (the toy world's tokenizer is trained from the task), a
    checkpoint folder's vocabulary is the policy's (check_saved_vocabulary)."""
    from align_lab.algorithms import sources
    from align_lab.algorithms.signals import TeacherLogprobs, reads
    from align_lab.models.saved import resolve_checkpoint
    from align_lab.rollout.hf import HFGenerate
    from align_lab.tasks.data_files import is_local

    algo = spec.algo
    if reads(algo, TeacherLogprobs) is None:
        return
    if sources.TEACHER in algo.source.kinds and not isinstance(spec.rollout, HFGenerate):
        engine = spec.names.get("rollout", type(spec.rollout).__name__)
        raise ConfigError(
            f"rollout={engine}: the engine samples its own copy of the policy, never the teacher that "
            "SFT-distill (and GKD at lmbda < 1) samples; use rollout=hf"
        )
    check_demonstrations(spec)
    path = algo.teaching.teacher
    if path is None:
        return
    if not is_local(path):  # a Hub id: resolved here, as model.name_or_path is (offline: one line)
        try:
            resolve_checkpoint(path, KEY)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "a file, not a directory" if folder.exists() else "no such directory"
        raise ConfigError(f"{KEY}={path}: {what} (a run folder, or a checkpoint saved by save_pretrained)")
    if is_run_checkpoints(folder):
        run = Path(path).expanduser().parent
        raise ConfigError(
            f"{KEY}={path}: the checkpoints folder of the run {run}; a teacher is named by its run folder: "
            f"pass {KEY}={run}"
        )
    if is_run_folder(folder):
        check_teacher_run(spec, path, folder)
        return
    from align_lab.results.manifest import MANIFEST

    # a sweep's folder (a study's, or Hydra's own -m sweep: multirun.yaml): its runs are its subfolders
    if (folder / MANIFEST).is_file() or (folder / "multirun.yaml").is_file():
        said = f"{KEY}={path}: a study folder, not a run"
        raise ConfigError(f"{said}; name one of its runs ({runs_in(folder)})")
    refuse_a_scorer(path, folder)
    try:
        resolve_checkpoint(path, KEY)  # a folder saved by save_pretrained, with its weights
    except ValueError as e:
        raise ConfigError(str(e)) from None
    check_saved_vocabulary(spec, path, folder)


def check_saved_vocabulary(spec, path: str, folder: Path) -> None:
    """At admission: a saved teacher's vocabulary against the policy's tokenizer, a pretrained policy's own
    or the toy world's, trained in memory from the task's corpus as its stage trains it (a toy student's
    was refused only after the SFT and reward-model stages, 20 s: hunt of 2026-12-04, t6). A teacher saved
    without a tokenizer is checked by its config's vocab_size against the toy world's (a pretrained policy's
    embedding rows are read at its stage)."""
    from align_lab.models.hf import saved_tokenizer
    from align_lab.models.tokenizer import word_level

    pretrained = getattr(spec.model, "pretrained", False)
    saved = (folder / "tokenizer_config.json").is_file()
    teacher = saved_tokenizer(str(folder)).get_vocab() if saved else None
    if teacher is None and pretrained:
        return  # a pretrained policy's embedding rows are read at its stage
    teacher_size = len(teacher) if teacher is not None else saved_vocab_size(folder)
    if teacher_size is None:
        return
    tokenizer = spec.model.load_tokenizer() if pretrained else word_level(spec.task.corpus())
    check_vocabulary(path, teacher, teacher_size, tokenizer, len(tokenizer.get_vocab()))


def saved_vocab_size(folder: Path) -> int | None:
    """The vocab_size a saved model's config.json gives (its embedding rows), or None where it gives none."""
    import json

    try:
        size = json.loads((folder / "config.json").read_text()).get("vocab_size")
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) else None


def refuse_a_scorer(path: str, folder: Path) -> None:
    """One line for a saved model whose config.json names only architectures that score rather than write
    (`LlamaForSequenceClassification`: a reward model), distilled from with tied embeddings or told to be
    saved again without (thirty-ninth hunt, case 46)."""
    import json

    try:
        names = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return
    scoring = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")
    if names and all(str(n).endswith(scoring) for n in names):
        raise ConfigError(
            f"{KEY}={path}: a model that scores ({names[0]}), not one that writes: a teacher is a language "
            "model (a run folder, or a ...ForCausalLM saved by save_pretrained); a reward model is "
            "reward=hf_rm's"
        )


def check_demonstrations(spec) -> None:
    """At admission: an algorithm whose off-policy steps are the task's demonstrations (GKD seq_kd=false)
    needs a single-response demonstration of every training prompt; one line naming the first without."""
    from align_lab.algorithms.sources import DATA
    from align_lab.rollout.demonstrated import missing_demonstrations

    if DATA not in spec.algo.source.kinds:
        return
    missing = missing_demonstrations(spec.task)
    if missing:
        task = spec.names.get("task", type(spec.task).__name__)
        raise ConfigError(
            f"algo.seq_kd=false: task={task} has no single-response demonstration of {len(missing)} of its "
            f"training prompts (the first: {missing[0][:60]!r}); the off-policy steps train on the task's "
            "demonstrations of the step's prompts: use a task that has them, or algo.seq_kd=true"
        )
