"""model=hf folders are checked before any compute: weights present, each weight file whole."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import save_file

from align_lab.models.saved import check_weights, resolve_checkpoint
from align_lab.value_checks import ConfigError


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    return tmp_path


def test_a_folder_with_a_config_but_no_weights_is_one_line(folder):
    with pytest.raises(
        ValueError, match=f"^name_or_path={folder}: the folder holds config.json but no weights"
    ):
        resolve_checkpoint(str(folder), "name_or_path")


def test_a_tokenizer_folder_needs_no_weights(folder):
    assert resolve_checkpoint(str(folder), "tokenizer") == str(folder.resolve())


@pytest.mark.parametrize("keep", [0.5, 5 / 1e9])  # half the file; 5 bytes (less than the header length)
def test_a_truncated_safetensors_file_is_damaged(folder, keep):
    save_file({"w": torch.zeros(1000)}, folder / "model.safetensors")
    check_weights(folder, "name_or_path")  # whole: fine
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: max(5, int(len(data) * keep))])
    with pytest.raises(ValueError, match=r"model.safetensors is damaged \(Error while deserializing header"):
        check_weights(folder, "name_or_path")


def test_a_truncated_torch_bin_is_damaged(folder):
    torch.save({"w": torch.zeros(1000)}, folder / "pytorch_model.bin")
    check_weights(folder, "name_or_path")
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"pytorch_model.bin is damaged \(not a whole torch file"):
        check_weights(folder, "name_or_path")


def test_a_sharded_index_naming_a_missing_shard_is_one_line(folder):
    save_file({"a": torch.zeros(4)}, folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="names model-00002-of-00002.safetensors, which is missing"):
        check_weights(folder, "name_or_path")


@pytest.mark.parametrize(
    "config, said",
    [
        (None, "the folder holds tokenizer files but no config.json, so no model"),
        ("{", "config.json is damaged (Expecting property name enclosed in double quotes"),
        ('{"vocab_size": 8}', "config.json names no model_type (the model's class)"),
    ],
)
@pytest.mark.parametrize("key", ["name_or_path", "algo.teacher"])
def test_a_model_folder_without_a_readable_config_is_one_line_before_any_compute(tmp_path, config, said, key):
    """Issue 73 seventh hunt: a folder of tokenizer files alone as model.name_or_path or algo.teacher, or
    a teacher whose config.json is torn: a 25-35-frame transformers traceback after the SFT and reward
    stages, the run left failed."""
    (tmp_path / "tokenizer_config.json").write_text("{}")
    if config is not None:
        (tmp_path / "config.json").write_text(config)
    with pytest.raises(ValueError) as e:
        resolve_checkpoint(str(tmp_path), key)
    assert str(e.value).startswith(f"{key}={tmp_path}: {said}") and "\n" not in str(e.value)
    assert resolve_checkpoint(str(tmp_path), "tokenizer") == str(tmp_path.resolve())  # a tokenizer's: fine


def test_a_saved_model_whose_config_does_not_fit_is_one_line_before_any_compute(tmp_path, hf_assets):
    """Issue 73 eighth hunt: a teacher whose config.json names a model_type transformers lacks (a
    KeyError), or gives another hidden_size than its weights have (`ignore_mismatched_sizes`), or is a
    folder: 27-frame tracebacks after the SFT and reward stages."""
    import shutil

    policy = tmp_path / "policy"
    shutil.copytree(hf_assets.policy, policy)
    assert resolve_checkpoint(str(policy), "algo.teacher") == str(policy.resolve())  # as saved: fine
    config = json.loads((policy / "config.json").read_text())
    (policy / "config.json").write_text(json.dumps({**config, "model_type": "nonexistent_xyz"}))
    with pytest.raises(ValueError) as e:
        resolve_checkpoint(str(policy), "algo.teacher")
    assert str(e.value).startswith(
        f"algo.teacher={policy}: config.json's model_type 'nonexistent_xyz' is no model class of "
        "transformers "
    )
    (policy / "config.json").write_text(json.dumps({**config, "hidden_size": 2 * config["hidden_size"]}))
    with pytest.raises(ValueError, match=r"holds model\..* of shape \[.*\], where its config.json makes it"):
        resolve_checkpoint(str(policy), "algo.teacher")
    (policy / "config.json").unlink()
    (policy / "config.json").mkdir()
    with pytest.raises(ValueError, match="config.json is a folder, not a file"):
        resolve_checkpoint(str(policy), "algo.teacher")


@pytest.mark.parametrize("name", ["gpt2@main", "owner/na me"])
def test_a_name_that_is_no_hub_id_names_its_key(name):
    """Ninth hunt: `algo.teacher=gpt2@main` printed huggingface_hub's validation text, naming no key."""
    with pytest.raises(ValueError) as e:
        resolve_checkpoint(name, "algo.teacher")
    assert str(e.value).startswith(f"algo.teacher={name}: no such directory, and no Hugging Face Hub id"), (
        e.value
    )


def policy_and_teacher_loads(folder) -> list:
    """(load, key) of `folder` loaded as a policy (model.name_or_path) and as a teacher (algo.teacher)."""
    from align_lab.models.hf import HFModel
    from align_lab.run.teacher import load_given

    return [
        (lambda: HFModel(name_or_path=str(folder)).init_policy(None), "model.name_or_path"),
        (lambda: load_given(str(folder), None, None), "algo.teacher"),
    ]


def test_a_causal_lm_whose_weights_lack_a_tensor_is_refused_not_started_random(hf_assets, tmp_path):
    """Ninth hunt: a teacher folder whose model.safetensors lacked one layer's tensor distilled a random
    layer (transformers' load report only): as a policy or as a teacher, one line naming the tensors."""
    import shutil

    from safetensors.torch import load_file

    from align_lab.models.hf import HFModel
    from align_lab.run.teacher import load_given

    folder = tmp_path / "missing"
    shutil.copytree(hf_assets.policy, folder)
    weights = load_file(folder / "model.safetensors")
    gone = sorted(k for k in weights if k.endswith("mlp.down_proj.weight"))[0]
    save_file(
        {k: v for k, v in weights.items() if k != gone},
        folder / "model.safetensors",
        metadata={"format": "pt"},
    )
    said = []  # what transformers' logger tells the terminal
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    try:
        with pytest.raises(ValueError) as e:
            HFModel(name_or_path=str(folder)).init_policy(None)
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert str(e.value).startswith(
        f"model.name_or_path={folder}: its weights lack 1 of the model's tensors ({gone})"
    )
    # fifteenth hunt: transformers' load report ("newly initialized ... Consider training on your
    # downstream task") came before the one line, pointing the other way
    assert not [x for x in said if "LOAD REPORT" in x], said
    with pytest.raises(ValueError) as e:
        load_given(str(folder), None, None)
    assert str(e.value).startswith(
        f"algo.teacher={folder}: its weights lack 1 of the model's tensors ({gone})"
    )
    HFModel(name_or_path=str(hf_assets.policy)).init_policy(None)  # a whole one loads
    # the tenth hunt: one NaN in a weight ("diverged ... lower algo.lr" at the first step)
    weights[gone] = weights[gone].clone()
    weights[gone][0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    for load, key in policy_and_teacher_loads(folder):
        with pytest.raises(ConfigError) as e:
            load()
        assert str(e.value) == (
            f"{key}={folder}: its weight {gone} holds 1 non-finite values (NaN or inf); the model cannot be "
            "used: save it again from a model whose weights are finite"
        )


@pytest.mark.parametrize(
    "scale", [0.0, 1e30, 1e-7, 1e-3, 1e-2], ids=["zero", "huge", "norm_tiny", "norm_1e-3", "norm_1e-2"]
)
def test_a_causal_lm_whose_logits_are_equal_for_every_token_is_refused(hf_assets, tmp_path, scale):
    """Eleventh hunt: a teacher saved with every weight 0 (or its down_proj weights x1e30: finite, and its
    logits come out equal) distilled the student towards a uniform distribution, and such a policy trained
    on no signal, each with rc 0 ("the rewards gave no signal ... algo.lr" at most): one line at load."""
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "flat"
    shutil.copytree(hf_assets.policy, folder)
    weights = load_file(folder / "model.safetensors")
    if scale == 0.0:
        weights = {k: v * 0.0 for k, v in weights.items()}
    elif scale < 1:  # the final norm x1e-7 (twelfth hunt), x1e-3, x1e-2 (thirteenth): uniform in effect
        weights = {k: v * scale if k == "model.norm.weight" else v for k, v in weights.items()}
    else:
        weights = {k: v * scale if k.endswith("down_proj.weight") else v for k, v in weights.items()}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    for load, key in policy_and_teacher_loads(folder):
        if key == "model.name_or_path" and scale in (1e-3, 1e-2):  # a policy near uniform: SFT trains it
            load()
            continue
        with pytest.raises(ConfigError) as e:
            load()
        assert str(e.value).startswith(f"{key}={folder}: its next-token ") and "\n" not in str(e.value)
        if scale in (1e-3, 1e-2):  # near uniform, not equal: a teacher's alone
            assert "its next-token distributions are uniform in effect at every place of 8 tokens" in str(
                e.value
            )


def test_a_small_random_init_loads_as_a_policy_and_is_refused_as_a_teacher(tmp_path):
    """Fourteenth hunt: a randomly initialised tiny model with initializer_range 0.002 (KL to uniform 2e-4
    nats) was refused as a policy, "weights all zero, or scaled past what its norms keep": SFT trains it.
    As a teacher it teaches nothing: refused, said so."""
    from transformers import LlamaForCausalLM

    from tests.hf_assets import tiny_config, tokenizer

    folder = tmp_path / "small_init"
    tok = tokenizer(tmp_path)
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config(tok, initializer_range=0.002)).save_pretrained(folder)
    tok.save_pretrained(folder)
    (policy, _), (teacher, key) = policy_and_teacher_loads(folder)
    policy()
    with pytest.raises(
        ConfigError, match=f"^{key}={folder}: its next-token distributions are uniform in effect"
    ):
        teacher()


def test_a_policy_whose_limits_pass_its_positions_is_said_at_admission(hf_assets):
    """Thirty-third hunt, case 72: `model.max_response_tokens=100000` on a model of 128 positions sampled
    responses of 367 tokens, past the context it was built for, with no word."""
    from align_lab.models.hf import HFModel

    fits = HFModel(name_or_path=str(hf_assets.policy), max_prompt_tokens=48, max_response_tokens=80)
    assert fits.positions() == 128 and fits.context_warning() is None
    past = HFModel(name_or_path=str(hf_assets.policy), max_prompt_tokens=48, max_response_tokens=100000)
    assert past.context_warning() == (
        "model.max_prompt_tokens=48 + model.max_response_tokens=100000 = 100048 tokens pass the 128 "
        "positions the model was built for (max_position_embeddings in its config.json): a long prompt's "
        "response is sampled and trained past them; lower them to 128 together"
    )


def test_a_file_given_as_a_model_folder_is_said_to_be_a_file(tmp_path):
    """`model.name_or_path=<a run's checkpoints/state-3.pt>` (or a data file) said `no such directory`, as
    for a path that is not there (fresh hunt of 2026-12-04, s3_model_pt)."""
    state = tmp_path / "state-00000003.pt"
    state.write_bytes(b"torch")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for path, kind in [(state, "a file"), (tmp_path / "gone", "a link to nothing")]:
        with pytest.raises(ValueError) as e:
            resolve_checkpoint(str(path), "model.name_or_path")
        assert (
            str(e.value)
            == f"model.name_or_path={path}: {kind}, not a folder; pass a folder saved by save_pretrained"
        )
    with pytest.raises(ValueError, match=r"^model.name_or_path=.*/absent: no such directory$"):
        resolve_checkpoint(str(tmp_path / "absent"), "model.name_or_path")
