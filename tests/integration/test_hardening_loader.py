"""Issue #18: malformed checkpoints name the file and what is wrong; trust is advised only where it helps,
and the log names the switch the user gave; doctor says when a source's commit was not verified."""

from __future__ import annotations

import datetime
import fractions
import json
import pickle
import sys
from argparse import Namespace

import pytest
import torch
from support import cli
from textless_stack.testing import tiny
from textless_stack.checkpoint_policy import TRUST_ENV, TRUSTED_BY_ENV, UnsafeCheckpoint, torch_load
from textless_stack.diagnose import diagnose
from textless_stack.loader import CheckpointError, load_model

UNTRUSTED = {TRUST_ENV: "", TRUSTED_BY_ENV: ""}  # whatever the calling shell has set


@pytest.fixture(scope="module")
def good_state():
    model, task, cfg = tiny.build("hubert", seed=3)
    return tiny.trainer_state(model, task, cfg)


def saved(tmp_path, state, name="ckpt.pt"):
    return tiny.save(state, tmp_path / name)


def fresh(good_state):
    return pickle.loads(pickle.dumps(good_state))  # a deep copy the loader may mutate


def one_error_line(out):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and lines and lines[-1].startswith("textless-stack: error:"), out.stderr
    assert "Traceback" not in out.stderr
    return lines[-1]


# --- malformed but pickleable checkpoints -------------------------------------------------


def _weights_not_tensors(s):
    s["model"]["mask_emb"] = s["model"]["mask_emb"].tolist()


def _weight_g_not_a_gain(s):
    # torch._weight_norm checks no shapes: re-expressing this as weight norm read out of bounds
    s["model"]["encoder.pos_conv.0.weight_g"] = torch.ones(3, 1, 1)


MALFORMED = {
    "empty-optimizer-history": (lambda s: s.update(optimizer_history=[]), r"'optimizer_history' is empty"),
    "no-optimizer-history": (lambda s: s.pop("optimizer_history"), r"'optimizer_history' is missing"),
    "cfg-a-list": (lambda s: s.update(cfg=[1, 2]), r"'cfg' is of type list, not a mapping"),
    "no-task-section": (lambda s: s["cfg"].pop("task"), r"'task' section is missing"),
    "model-section-a-string": (lambda s: s["cfg"].update(model="hubert"), r"'model' section is of type str"),
    "args-a-dict": (lambda s: s.update(args={"arch": "hubert"}), r"'args' is of type dict"),
    "args-without-arch": (lambda s: s.update(args=Namespace(task="hubert_pretraining")), r"no model architecture"),
    "weights-not-tensors": (_weights_not_tensors, r"weights are not all tensors \('mask_emb' is of type list\)"),
    "weight-g-not-a-gain": (_weight_g_not_a_gain, r"weights do not fit the model: .*encoder.pos_conv.0.weight_g"),
    # what no check foresees still names the file and the stage
    "task-state-a-list": (lambda s: s.update(task_state=[1]), r"building its task and model failed \(TypeError"),
    "int-field-a-string": (lambda s: s["cfg"]["model"].update(encoder_layers="two"),
                           r"failed \(ValidationError: Value 'two' could not be converted to Integer"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path, good_state, case):
    damage, message = MALFORMED[case]
    state = fresh(good_state)
    damage(state)
    path = saved(tmp_path, state)
    with pytest.raises(CheckpointError, match=message) as e:
        load_model(path)
    assert str(e.value).startswith(f"{path}: ")


def test_cli_empty_optimizer_history_names_the_file(tmp_path, good_state):
    state = fresh(good_state)
    state["optimizer_history"] = []
    path = saved(tmp_path, state)
    line = one_error_line(cli("inspect", path, env=UNTRUSTED))
    assert line.startswith(f"textless-stack: error: {path}: its 'optimizer_history' is empty")
    assert "IndexError" not in line


# --- when to advise --trust-checkpoint ----------------------------------------------------


def test_cli_plain_pickle_is_not_advised_trust_and_trust_would_not_help(tmp_path):
    path = tmp_path / "plain.pt"
    with open(path, "wb") as f:
        pickle.dump({"a": 1}, f)
    line = one_error_line(cli("inspect", path, env=UNTRUSTED))
    assert f"{path}: not a PyTorch checkpoint" in line and "--trust-checkpoint would not help" in line
    assert "rerun with" not in line
    trusted = one_error_line(cli("inspect", path, "--trust-checkpoint", env=UNTRUSTED))
    assert str(path) in trusted and "rerun with" not in trusted


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_pickle_of_an_arbitrary_object_is_not_advised_trust(tmp_path, monkeypatch, protocol):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = tmp_path / "fraction.pkl"
    path.write_bytes(pickle.dumps(fractions.Fraction(1, 3), protocol=protocol))
    with pytest.raises(UnsafeCheckpoint, match="not a PyTorch checkpoint") as e:
        torch_load(str(path))
    assert "would not help" in str(e.value) and "rerun with" not in str(e.value)


class Thing:  # pickled as __main__.Thing below: no other program can resolve it
    pass


def test_global_from_the_writing_script_is_not_advised_trust(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    monkeypatch.setattr(Thing, "__module__", "__main__")
    monkeypatch.setattr(sys.modules["__main__"], "Thing", Thing, raising=False)
    path = tmp_path / "script.pt"
    torch.save({"model": {}, "thing": Thing()}, path)
    with pytest.raises(UnsafeCheckpoint, match=r"global __main__.Thing.*would not help") as e:
        torch_load(str(path))
    assert "rerun with" not in str(e.value)


@pytest.fixture
def dated_checkpoint(tmp_path, good_state):
    """A real checkpoint whose only problem is one global outside the allowlist: trust is what it needs."""
    state = fresh(good_state)
    state["extra_state"]["when"] = datetime.date(2021, 7, 6)
    return saved(tmp_path, state, "dated.pt")


def test_cli_refused_global_advises_trust_and_the_flag_works_and_is_named(dated_checkpoint):
    line = one_error_line(cli("inspect", dated_checkpoint, env=UNTRUSTED))
    assert "refused to unpickle global datetime.date" in line and "rerun with --trust-checkpoint" in line
    out = cli("inspect", dated_checkpoint, "--trust-checkpoint", env=UNTRUSTED)
    assert out.returncode == 0, out.stderr
    assert f"full unpickling of {dated_checkpoint}: trusted by --trust-checkpoint" in out.stderr
    assert f"{TRUST_ENV}=1" not in out.stderr


def test_cli_trust_by_environment_is_named_as_such(dated_checkpoint):
    out = cli("inspect", dated_checkpoint, env={**UNTRUSTED, TRUST_ENV: "1"})
    assert out.returncode == 0, out.stderr
    assert f"full unpickling of {dated_checkpoint}: trusted by {TRUST_ENV}=1" in out.stderr
    assert "--trust-checkpoint" not in out.stderr


# --- doctor: a commit nobody verified does not look verified ------------------------------

FAIRSEQ, TEXTLESSLIB = "dd106d9534b22e7db859a6b87ffd7780c38341f8", "ba33d669d8284b4f7bfe81e7384e83ab799fe384"


@pytest.fixture
def local_dir_manifest(tmp_path, monkeypatch):
    manifest = {
        "sources": {
            "fairseq": {"project": "fairseq", "pinned_commit": FAIRSEQ, "standin": False, "kind": "git",
                        "commit": FAIRSEQ, "commit_verified": True},
            "textlesslib": {"project": "textlesslib", "pinned_commit": TEXTLESSLIB, "standin": False,
                            "kind": "local-dir", "commit": TEXTLESSLIB, "commit_verified": False},
        },
        "patches": {"fairseq": {"flavour": "dd106d9", "transforms_applied": 0, "transforms_already_applied": 0,
                                "files": []}},
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    env = {"TEXTLESS_STACK_MANIFEST": str(path), "TEXTLESS_STACK_MODELS": str(tmp_path / "models")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_diagnose_warns_of_an_unverified_commit_without_calling_it_a_problem(local_dir_manifest):
    facts, problems, warnings = diagnose()
    assert facts["source textlesslib"] == "local-dir ba33d669d828  (local directory: commit NOT verified)"
    assert facts["source fairseq"] == "git dd106d9534b2"
    assert len(warnings) == 1 and warnings[0].startswith("textlesslib: the local-dir source is recorded as commit "
                                                         "ba33d669d828, but that was not verified")
    assert not any("verified" in p for p in problems)


def test_cli_doctor_shows_the_unverified_commit(local_dir_manifest):
    out = cli("doctor", "--json", env=local_dir_manifest)
    assert "source textlesslib  local-dir ba33d669d828  (local directory: commit NOT verified)" in out.stdout
    assert "WARNING: textlesslib: the local-dir source is recorded as commit ba33d669d828" in out.stdout
    assert '"warnings": [\n    "textlesslib: the local-dir source' in out.stdout  # --json
    assert out.stdout.splitlines()[-1].endswith(", 1 warning(s)")
