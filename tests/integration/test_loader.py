"""Legacy checkpoints: every vintage loads losslessly (parity 0.0) and safely; bad input fails clearly."""

from __future__ import annotations

import datetime
import logging
import os

import pytest
import torch
from support import VINTAGES, cli, with_float_ints, with_parametrized_weight_norm, with_unknown_keys
from textless_stack.testing import tiny
from textless_stack.testing.reference import extract
from textless_stack.checkpoint_policy import TRUST_ENV, UnsafeCheckpoint, torch_load
from textless_stack.loader import CheckpointError, load_model

WAV = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))


def reference(kind="hubert", **overrides):
    model, task, cfg = tiny.build(kind, seed=3, **overrides)
    return model, tiny.trainer_state(model, task, cfg)


def save_and_load(tmp_path, state, name="ckpt.pt"):
    return load_model(tiny.save(state, tmp_path / name))


def assert_parity(model, loaded):
    for layer in (1, None):
        ref, out = extract(model, WAV, layer), extract(loaded.model, WAV, layer)
        assert ref.shape == out.shape
        assert (ref - out).abs().max().item() == 0.0


# --- vintages (support.VINTAGES): each is the state a real fairseq of some age writes -------


@pytest.mark.parametrize("kind", ["hubert", "wav2vec2"])
@pytest.mark.parametrize("vintage", sorted(VINTAGES))
def test_vintage_loads_with_exact_parity(tmp_path, kind, vintage, caplog):
    model, state = reference(kind)
    caplog.set_level(logging.INFO, logger="textless_stack")
    loaded = save_and_load(tmp_path, VINTAGES[vintage](state, kind))
    assert_parity(model, loaded)
    assert loaded.cfg.model._name == kind
    if vintage != "trainer-cfg":
        assert loaded.upgrades, "every upgrade is reported"
        assert any(line in caplog.text for line in loaded.upgrades)


def test_upgrade_messages_say_what_changed(tmp_path, caplog):
    _, state = reference()
    caplog.set_level(logging.INFO, logger="textless_stack")
    loaded = save_and_load(tmp_path, with_parametrized_weight_norm(with_unknown_keys(with_float_ints(state, "hubert"), "hubert"), "hubert"))
    text = "\n".join(loaded.upgrades)
    assert "model.encoder_layers: 2.0 -> 2" in text
    assert "multiple_train_files" in text
    assert "parametrization tensors renamed" in text
    assert "multiple_train_files" in caplog.text  # dropped keys are a warning


def test_weight_norm_over_another_dim_is_re_expressed_losslessly(tmp_path):
    model, state = reference()
    w = state["model"]
    g, v = w["encoder.pos_conv.0.weight_g"], w["encoder.pos_conv.0.weight_v"]
    effective = torch._weight_norm(v, g, 2)
    w["encoder.pos_conv.0.weight_g"] = torch.norm_except_dim(effective, 2, 0)  # [C, 1, 1]: the dim=0 layout
    w["encoder.pos_conv.0.weight_v"] = effective.clone()
    loaded = save_and_load(tmp_path, state)
    assert any("dim 0 re-expressed over dim 2" in u for u in loaded.upgrades)
    ref, out = extract(model, WAV), extract(loaded.model, WAV)
    assert (ref - out).abs().max().item() < 1e-5  # a float re-split of the same weight, not a loss


def test_extra_state_numpy_and_dictionaries_survive_the_safe_unpickler(tmp_path):
    _, state = reference()
    path = tiny.save(state, tmp_path / "trainer.pt")
    raw = torch_load(str(path))
    assert raw["extra_state"]["best"].tolist() == [3.25, 3.5]
    assert len(raw["task_state"]["dictionaries"][0]) == len(state["task_state"]["dictionaries"][0])


# --- refusals ------------------------------------------------------------------------------


def test_batchnorm_pos_conv_flag_on_weight_norm_weights_is_a_partial_load(tmp_path):
    _, state = reference()
    state["cfg"]["model"]["conv_pos_batch_norm"] = True  # the weights are a weight-norm conv's
    with pytest.raises(CheckpointError, match=r"partial load.*encoder\.pos_conv\.0\.running_mean"):
        save_and_load(tmp_path, state)


@pytest.mark.parametrize("damage", ["missing", "unexpected"])
def test_partial_loads_are_refused_naming_the_keys(tmp_path, damage):
    _, state = reference()
    if damage == "missing":
        del state["model"]["encoder.pos_conv.0.weight_g"]
        expected = r"missing keys \['encoder.pos_conv.0.weight_g'\]"
    else:
        state["model"]["encoder.extra_head.weight"] = torch.zeros(1)
        expected = r"unexpected keys \['encoder.extra_head.weight'\]"
    with pytest.raises(CheckpointError, match=expected):
        save_and_load(tmp_path, state)


def test_non_integral_float_for_int_field_is_refused(tmp_path):
    _, state = reference()
    state["cfg"]["model"]["encoder_layers"] = 2.5
    with pytest.raises(CheckpointError, match=r"encoder_layers is 2.5.*not integral"):
        save_and_load(tmp_path, state)


def test_unknown_model_type(tmp_path):
    _, state = reference()
    state["cfg"]["model"]["_name"] = "hubert_from_the_future"
    with pytest.raises(CheckpointError, match="unknown model type 'hubert_from_the_future'"):
        save_and_load(tmp_path, state)


def test_a_plugin_is_imported_only_when_given(tmp_path):
    """A checkpoint naming a --user-dir never makes the loader run that code by itself."""
    plugin = tmp_path / "hubert_plugin"
    plugin.mkdir()
    (plugin / "__init__.py").write_text(
        "from fairseq.models import register_model_architecture\n"
        "@register_model_architecture('hubert', 'hubert_plugin_arch')\n"
        "def arch(cfg):\n    pass\n")
    model, state = reference()
    state["cfg"]["common"]["user_dir"] = str(plugin)
    path = tiny.save(state, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError, match=r"--user-dir plugin .*hubert_plugin.*pass --user-dir DIR"):
        load_model(path)
    from fairseq.models import ARCH_MODEL_REGISTRY

    assert "hubert_plugin_arch" not in ARCH_MODEL_REGISTRY
    with pytest.raises(CheckpointError, match="no such directory"):
        load_model(path, user_dir=tmp_path / "elsewhere")
    assert_parity(model, load_model(path, user_dir=plugin))
    assert "hubert_plugin_arch" in ARCH_MODEL_REGISTRY


def test_registry_file_with_wrong_hash_is_refused_before_unpickling(tmp_path):
    _, state = reference()
    with pytest.raises(CheckpointError, match=r"does not match registry model 'hubert-base-ls960'.*models fetch"):
        save_and_load(tmp_path, state, name="hubert_base_ls960.pt")


def test_disallowed_global_is_named_and_full_unpickling_needs_opt_in(tmp_path, monkeypatch, caplog):
    path = tmp_path / "odd.pt"
    torch.save({"model": {}, "when": datetime.date(2021, 7, 6)}, path)
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(UnsafeCheckpoint, match=r"global datetime.date.*--trust-checkpoint"):
        torch_load(str(path))
    monkeypatch.setenv(TRUST_ENV, "1")
    with caplog.at_level(logging.WARNING):
        assert torch_load(str(path))["when"] == datetime.date(2021, 7, 6)
    assert "full unpickling" in caplog.text


# --- the command line on bad input -------------------------------------------------------


class Evil:
    def __reduce__(self):
        return (os.system, ("echo SHOULD-NOT-RUN",))


def bad_inputs(tmp_path):
    good = tiny.make_checkpoint(tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    not_ckpt = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_ckpt)
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Evil()}, evil)
    _, state = reference()
    state["cfg"]["model"]["_name"] = "mystery"
    unknown = tiny.save(state, tmp_path / "unknown.pt")
    return {
        "missing": (tmp_path / "absent.pt", "no such file"),
        "truncated": (truncated, "truncated or corrupt"),
        "not-a-checkpoint": (not_ckpt, "not a fairseq checkpoint"),
        "disallowed-global": (evil, "refused to unpickle global posix.system"),
        "unknown-model": (unknown, "unknown model type 'mystery'"),
    }


def test_cli_bad_inputs_one_line_no_traceback(tmp_path):
    for case, (path, message) in bad_inputs(tmp_path).items():
        out = cli("inspect", path)
        assert out.returncode == 1, case
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("textless-stack: error:"), (case, out.stderr)
        assert message in lines[0], (case, lines[0])
        assert "SHOULD-NOT-RUN" not in out.stdout + out.stderr


def test_cli_verbose_shows_the_traceback(tmp_path):
    out = cli("inspect", tmp_path / "absent.pt", "--verbose")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_cli_inspect_describes_a_good_checkpoint(tmp_path):
    out = cli("inspect", tiny.make_checkpoint(tmp_path / "good.pt"))
    assert out.returncode == 0, out.stderr
    assert '"model": "hubert"' in out.stdout and '"encoder_layers": 2' in out.stdout
