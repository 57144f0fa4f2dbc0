"""Load fairseq checkpoints of every vintage, losslessly and safely.

Every entrypoint loads models through `load_model`, never through
`checkpoint_utils.load_model_ensemble_and_task` directly, because that path:
- cannot tell a truncated file from a hostile one (we verify known files by sha256 and
  unpickle under an allowlist, see checkpoint_policy);
- lets `strict=False` workarounds drop weights silently (we load strictly, always);
- trips over checkpoints from other fairseq versions (we upgrade them first, logging each change).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import re
import typing
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import integrity
from .checkpoint_policy import UnsafeCheckpoint, torch_load
from .errors import UserError
from .integrity import Verified

log = logging.getLogger(__name__)


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded faithfully; the message says why and what to do."""


@dataclass
class Loaded:
    model: torch.nn.Module
    cfg: Any                 # fairseq's DictConfig (task, model, ...)
    task: Any
    path: Path
    sha256: str
    upgrades: list[str] = field(default_factory=list)


_WEIGHT_NORM_PARAMETRIZATION = re.compile(r"^(.*)\.parametrizations\.weight\.original([01])$")
_BATCHNORM_POS_CONV = re.compile(r"^encoder\.pos_conv\.\d+\.running_mean$")


def load_model(source: str | Path | Verified, device: str | torch.device = "cpu",
               user_dir: str | Path | None = None, state: dict | None = None,
               task_data: str | Path | None = None) -> Loaded:
    """Read, verify, upgrade and strictly load one fairseq checkpoint; model in eval mode.

    source: a path, or a file `integrity` already verified (then it is not hashed again).
    user_dir: the fairseq plugin (--user-dir) a checkpoint's model or task was registered by.
    Imported only when given: a checkpoint never decides which code runs.
    state: the file's contents when the caller has already unpickled them (see `unpickle`).
    task_data: the task's data directory, for tasks that read their dictionary there (language_modeling:
    dict.txt), instead of the training machine's path saved in the checkpoint."""
    verified = source if isinstance(source, Verified) else _verify(Path(source))
    path = verified.path
    state = read_checkpoint(path) if state is None else _fairseq_state(state, path)
    _check_layout(state, path)
    _import_plugin(state, path, user_dir)
    upgrades: list[str] = []
    with _stage(path, "upgrading its config"):
        cfg = _config(state, path, upgrades)
        if task_data is not None:
            from omegaconf import open_dict

            with open_dict(cfg):
                cfg.task.data = str(task_data)
    with _stage(path, "building its task and model"):
        task, model = _build(cfg, state, path)
    with _stage(path, "upgrading its weights"):
        weights = _upgrade_weights(state["model"], model.state_dict(), upgrades)
    with _stage(path, "loading its weights"):
        _load_strict(model, weights, cfg, path)
    for line in upgrades:
        log.info("%s: %s", path.name, line)
    return Loaded(model=model.eval().to(device), cfg=cfg, task=task, path=path, sha256=verified.sha256,
                  upgrades=upgrades)


# --- reading ------------------------------------------------------------------------------


def _verify(path: Path) -> Verified:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    try:
        return integrity.verify(path)
    except integrity.IntegrityError as e:  # for a checkpoint, a wrong file is a checkpoint that cannot load
        raise CheckpointError(str(e)) from None


def read_checkpoint(path: Path) -> dict:
    """A fairseq checkpoint's contents, unpickled under the allowlist."""
    return _fairseq_state(unpickle(path), path)


def _fairseq_state(state, path: Path) -> dict:
    if not isinstance(state, dict) or "model" not in state or not isinstance(state["model"], dict):
        raise CheckpointError(f"{path}: not a fairseq checkpoint (no 'model' weights in it)")
    return state


def unpickle(path: Path):
    """Any torch.save file, unpickled under the allowlist (the file is already verified: see `_verify`)."""
    try:
        state = torch_load(str(path), map_location="cpu")
    except UnsafeCheckpoint as e:
        raise CheckpointError(str(e)) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {first}") from None
    except Exception as e:  # any other unpickling failure of a non-checkpoint file
        raise CheckpointError(f"{path}: not a readable checkpoint: {type(e).__name__}: {e}") from None
    return state


def _check_layout(state: dict, path: Path) -> None:
    """What fairseq's own upgrade code takes for granted: a malformed file is named, never a bare traceback."""
    from omegaconf import OmegaConf

    odd = next((k for k, v in state["model"].items() if not torch.is_tensor(v)), None)
    if odd is not None:
        raise CheckpointError(f"{path}: its model weights are not all tensors ({odd!r} is of type "
                              f"{type(state['model'][odd]).__name__}): not a fairseq checkpoint")
    args, cfg = state.get("args"), state.get("cfg")
    if args is not None:
        if not isinstance(args, argparse.Namespace):
            raise CheckpointError(f"{path}: its 'args' is of type {type(args).__name__}, not an argparse.Namespace: "
                                  "not a fairseq checkpoint")
        if getattr(args, "arch", None) is None:
            raise CheckpointError(f"{path}: its 'args' names no model architecture ('arch'): not a fairseq checkpoint")
    elif cfg is not None:
        if not (isinstance(cfg, dict) or OmegaConf.is_dict(cfg)):
            raise CheckpointError(f"{path}: its 'cfg' is of type {type(cfg).__name__}, not a mapping: not a fairseq checkpoint")
        for section in ("model", "task"):
            value = cfg.get(section)
            if not (isinstance(value, (dict, argparse.Namespace)) or OmegaConf.is_dict(value)):
                what = "missing" if value is None else f"of type {type(value).__name__}, not a mapping"
                raise CheckpointError(f"{path}: its config's {section!r} section is {what}: not a fairseq checkpoint")
    history = state.get("optimizer_history")
    pre_06 = "optimizer_history" not in state and {"best_loss", "optimizer"} <= state.keys()  # fairseq upgrades these
    if not pre_06 and not (isinstance(history, list) and history):
        what = ("missing" if "optimizer_history" not in state else
                "empty" if isinstance(history, list) else f"of type {type(history).__name__}")
        raise CheckpointError(f"{path}: its 'optimizer_history' is {what}, but fairseq's checkpoint upgrade reads "
                              "its last entry: not a complete fairseq checkpoint")


@contextlib.contextmanager
def _stage(path: Path, what: str):
    """Any other failure while `what` still names the file and the stage: the file is what is wrong."""
    try:
        yield
    except (CheckpointError, ImportError):  # ImportError: a broken environment, not a bad file
        raise
    except Exception as e:
        detail = " ".join(str(e).split())[:300]
        raise CheckpointError(f"{path}: {what} failed ({type(e).__name__}: {detail}): "
                              "a malformed or unsupported fairseq checkpoint") from e


# --- plugins (--user-dir) ------------------------------------------------------------------


def _named_user_dir(state: dict) -> str | None:
    from omegaconf import OmegaConf

    if state.get("args") is not None:
        return getattr(state["args"], "user_dir", None)
    cfg = state.get("cfg")
    cfg = OmegaConf.to_container(cfg) if OmegaConf.is_config(cfg) else cfg
    common = (cfg or {}).get("common") or {}
    return common.get("user_dir") if isinstance(common, dict) else getattr(common, "user_dir", None)


def _import_plugin(state: dict, path: Path, user_dir) -> None:
    named = _named_user_dir(state)
    if user_dir is None:
        if named:
            raise CheckpointError(f"{path}: its model was trained with a fairseq --user-dir plugin ({named}): pass "
                                  "--user-dir DIR to import it (the plugin's code runs: only for plugins you trust)")
        return
    from fairseq.utils import import_user_module

    if not Path(user_dir).is_dir():
        raise CheckpointError(f"--user-dir {user_dir}: no such directory")
    log.info("importing fairseq plugin %s (the checkpoint names %s)", user_dir, named)
    import_user_module(argparse.Namespace(user_dir=str(Path(user_dir).resolve())))


# --- configuration -----------------------------------------------------------------------


def _config(state: dict, path: Path, upgrades: list[str]):
    from fairseq import checkpoint_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    args, cfg = state.get("args"), state.get("cfg")
    if args is not None:
        upgrades.append("args-style checkpoint (argparse.Namespace): converted to a config")
        _check_representable(vars(args), state["model"], path)
        _normalise_namespace(args, upgrades)
        state["cfg"] = None
        state = checkpoint_utils._upgrade_state_dict(state)  # fairseq's own args -> cfg upgrades
        return state["cfg"] if state.get("cfg") is not None else convert_namespace_to_omegaconf(args)
    if cfg is None:
        raise CheckpointError(f"{path}: neither 'args' nor 'cfg' in the checkpoint: not a fairseq checkpoint")
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg)
    _check_representable(_as_dict(cfg.get("model")), state["model"], path)
    for section in ("model", "task"):
        if isinstance(cfg.get(section), dict):
            cfg[section] = _normalise_section(cfg[section], section, path, upgrades)
        elif isinstance(cfg.get(section), argparse.Namespace):  # models without a dataclass (transformer)
            _normalise_namespace(cfg[section], upgrades)
    state["cfg"] = _omegaconf_create(cfg)
    return checkpoint_utils._upgrade_state_dict(state)["cfg"]


def _as_dict(section) -> dict:
    return vars(section) if isinstance(section, argparse.Namespace) else (section or {})


def config_section(cfg, name: str) -> dict:
    """One section of a loaded config as a mapping (models without a dataclass keep a Namespace)."""
    return _as_dict(cfg.get(name))


def _omegaconf_create(cfg: dict):
    # fairseq's own loader does the same: old configs hold Namespace values (e.g. w2v_args)
    from omegaconf import OmegaConf, _utils

    original = _utils.is_primitive_type
    _utils.is_primitive_type = lambda _: True
    try:
        created = OmegaConf.create(cfg)
    finally:
        _utils.is_primitive_type = original
    OmegaConf.set_struct(created, True)
    return created


def _dataclass_for(section: str, name: str | None):
    from fairseq.models import MODEL_DATACLASS_REGISTRY
    from fairseq.tasks import TASK_DATACLASS_REGISTRY

    if section == "model":  # a model's config may be named by one of its architectures (transformer_lm_big)
        return MODEL_DATACLASS_REGISTRY.get(name) or MODEL_DATACLASS_REGISTRY.get(_model_of_arch(name))
    return TASK_DATACLASS_REGISTRY.get(name)


def _unknown_type(section: str, name, path: Path) -> CheckpointError:
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY

    known = sorted(set(MODEL_REGISTRY) | set(ARCH_MODEL_REGISTRY)) if section == "model" else []
    hint = f" (this fairseq knows e.g. {', '.join(k for k in known if 'hubert' in k or 'wav2vec' in k)})" if known else ""
    return CheckpointError(f"{path}: unknown {section} type {name!r}{hint}")


def _normalise_section(section_cfg: dict, section: str, path: Path, upgrades: list[str]) -> dict:
    """Coerce integral floats in int fields; drop keys this fairseq does not know, only where that is safe.

    A key is dropped only when UNKNOWN_CONFIG_KEYS says dropping it leaves the features unchanged (at any
    value, or at the value that is this fairseq's behaviour); any other unknown key is refused by name."""
    name = section_cfg.get("_name")
    dc = _dataclass_for(section, name)
    if dc is None:
        raise _unknown_type(section, name, path)
    fields = {f.name: f for f in dataclasses.fields(dc)}
    unknown = sorted(k for k in section_cfg if k != "_name" and k not in fields)
    _refuse_unsafe_drops(section_cfg, section, unknown, path)
    if unknown:
        log.warning("%s: %s config keys unknown to this fairseq, dropped: %s", path.name, section, ", ".join(unknown))
        upgrades.append(f"{section}: dropped unknown config keys {unknown}")
    out = {k: v for k, v in section_cfg.items() if k not in unknown}
    hints = typing.get_type_hints(dc)
    for key, value in list(out.items()):
        if key in fields and _is_int_field(hints.get(key)):
            out[key] = _coerce_int(value, f"{section}.{key}", path, upgrades)
    return out


def _normalise_namespace(args, upgrades: list[str]) -> None:
    for section, name in (("model", getattr(args, "arch", None)), ("task", getattr(args, "task", None))):
        dc = _dataclass_for(section, name)
        if dc is None:
            continue
        hints = typing.get_type_hints(dc)
        for f in dataclasses.fields(dc):
            if hasattr(args, f.name) and _is_int_field(hints.get(f.name)):
                setattr(args, f.name, _coerce_int(getattr(args, f.name), f"args.{f.name}", None, upgrades))


def _model_of_arch(arch):
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    return ARCH_MODEL_NAME_REGISTRY.get(arch)


def _is_int_field(hint) -> bool:
    return hint is int or (typing.get_origin(hint) is typing.Union and int in typing.get_args(hint)
                           and float not in typing.get_args(hint))


def _coerce_int(value, where: str, path: Path | None, upgrades: list[str]):
    if isinstance(value, float):
        if not value.is_integer():
            raise CheckpointError(f"{path or 'checkpoint'}: {where} is {value!r}, but this fairseq declares it int "
                                  "and the value is not integral: refusing to round it")
        upgrades.append(f"{where}: {value!r} -> {int(value)} (int field)")
        return int(value)
    return value


def _check_representable(model_cfg, weights: dict, path: Path) -> None:
    """A BatchNorm positional convolution (conv_pos_batch_norm, mhubert-base-25hz) needs this fairseq to build it
    (env/patcher backports fairseq 4db26494 to HuBERT), and config and weights must agree on it."""
    model_cfg = model_cfg or {}
    wants, has = bool(model_cfg.get("conv_pos_batch_norm")), any(_BATCHNORM_POS_CONV.match(k) for k in weights)
    if has and not wants:
        raise CheckpointError(
            f"{path}: its weights hold a BatchNorm positional convolution (encoder.pos_conv.0.running_mean), but its "
            "config does not set conv_pos_batch_norm: config and weights disagree; refusing a partial load."
        )
    if wants and not _builds_conv_pos_batch_norm(model_cfg):
        name = model_cfg.get("_name") or model_cfg.get("arch")
        why = ("this fairseq lacks the textless-stack backport (env/patcher transform "
               "hubert-config-conv-pos-batch-norm): rebuild the environment" if name == "hubert" else
               "upstream fairseq builds it for HuBERT only, and so does the backport")
        raise CheckpointError(
            f"{path}: its positional convolution is BatchNorm + Conv1d (conv_pos_batch_norm, fairseq 4db26494, "
            f"e.g. mhubert-base-25hz), which this fairseq cannot build for a {name!r} model: {why}. "
            "Refusing rather than loading it with missing weights."
        )


# --- model and weights --------------------------------------------------------------------


def _build(cfg, state: dict, path: Path):
    from fairseq import tasks
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_DATACLASS_REGISTRY

    model_cfg = _as_dict(cfg.model) if cfg.get("model") is not None else {}
    model_name = model_cfg.get("_name") or model_cfg.get("arch")
    if model_name not in MODEL_DATACLASS_REGISTRY and model_name not in ARCH_MODEL_REGISTRY:
        raise _unknown_type("model", model_name, path)
    task = tasks.setup_task(cfg.task)
    if "task_state" in state:
        task.load_state_dict(state["task_state"])
    return task, task.build_model(cfg.model)


def _upgrade_weights(saved: dict, expected: dict, upgrades: list[str]) -> dict:
    out = {}
    renamed = 0
    for key, value in saved.items():
        m = _WEIGHT_NORM_PARAMETRIZATION.match(key)
        if m:
            key = f"{m.group(1)}.weight_{'g' if m.group(2) == '0' else 'v'}"
            renamed += 1
        out[key] = value
    if renamed:
        upgrades.append(f"weight norm: {renamed} parametrization tensors renamed to weight_g/weight_v")
    for key in [k for k in out if k.endswith(".weight_g")]:
        v_key = key[: -len("_g")] + "_v"
        if key in expected and v_key in out and out[key].shape != expected[key].shape:
            old, new = _norm_dim(out[key].shape, out[v_key].shape), _norm_dim(expected[key].shape, out[v_key].shape)
            if old is None or new is None:
                continue  # not a weight-norm layout change: the strict load names it
            # w = g * v / ||v|| is what the layer computes; re-split it for fairseq's dim, losslessly
            w = torch._weight_norm(out[v_key], out[key], old)
            out[key], out[v_key] = torch.norm_except_dim(w, 2, new), w
            upgrades.append(f"{key}: weight norm over dim {old} re-expressed over dim {new} "
                            "(fairseq's layout) through the effective weight")
    return out


def _norm_dim(g_shape, v_shape):
    """The dim a weight-norm gain of `g_shape` normalises `v_shape` over; None if it is not such a gain.

    Checked in full: torch._weight_norm does not check shapes and reads out of bounds."""
    dims = [i for i, n in enumerate(g_shape) if n != 1]
    if len(dims) != 1 or len(g_shape) != len(v_shape) or g_shape[dims[0]] != v_shape[dims[0]]:
        return None
    return dims[0]


def _load_strict(model: torch.nn.Module, weights: dict, cfg, path: Path) -> None:
    try:
        result = model.load_state_dict(weights, strict=False, model_cfg=cfg.model)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model: {' '.join(str(e).split())[:600]}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        raise CheckpointError(f"{path}: refusing a partial load (no weight may be lost or left random): "
                              + "; ".join(parts))


# --- config keys this fairseq does not know -------------------------------------------------------

_ANY = object()  # dropping the key is safe whatever its value

# Keys a newer (or older) fairseq writes into a checkpoint's model or task config that this fairseq's
# dataclasses do not declare, and that may be dropped: (_ANY or the one value that is this fairseq's
# behaviour, why dropping is safe). Any other unknown key is refused by name: it might change the
# computation. Read off the config dataclasses (HubertConfig, Wav2Vec2Config, HubertPretrainingConfig,
# AudioPretrainingConfig) from fairseq dd106d9 to main (3d262bb2); a key this fairseq knows never reaches here.
UNKNOWN_CONFIG_KEYS = {
    "model": {
        "conv_pos_batch_norm": (False, "BatchNorm + Conv1d positional convolution (fairseq 4db26494)"),
        "layer_type": ("transformer", "conformer / adapter encoder layers instead of transformer ones"),
        "pos_conv_depth": (1, "a stack of positional convolutions with LayerNorms"),
        "crop_seq_to_multiple": (1, "crops frames off the end of every sequence"),
        "required_seq_len_multiple": (_ANY, "pads frames as masked keys, removed again: same features (to rounding)"),
        "checkpoint_activations": (_ANY, "recomputes activations in training to save memory: same function"),
        "offload_activations": (_ANY, "moves activations to CPU in training: same function"),
        "min_params_to_wrap": (_ANY, "FSDP wrapping in training"),
        "ddp_backend": (_ANY, "distributed training backend"),
        "require_same_masks": (_ANY, "training masks (extract_features runs with mask=False)"),
        "mask_dropout": (_ANY, "training masks (extract_features runs with mask=False)"),
        "mask_min_space": (_ANY, "training masks (extract_features runs with mask=False)"),
        "mask_channel_min_space": (_ANY, "training masks (extract_features runs with mask=False)"),
        "max_positions": (_ANY, "the longest input a data loader may batch; not used by the forward"),
        "depthwise_conv_kernel_size": (_ANY, "read only by conformer layers (layer_type is checked)"),
        "attn_type": (_ANY, "read only by conformer layers (layer_type is checked)"),
        "pos_enc_type": (_ANY, "read only by conformer layers (layer_type is checked)"),
        "fp16": (_ANY, "read only by conformer layers (layer_type is checked)"),
        "adp_num": (_ANY, "read only by adapter layers (layer_type 'trf_adp', checked)"),
        "adp_dim": (_ANY, "read only by adapter layers (layer_type 'trf_adp', checked)"),
        "adp_act_fn": (_ANY, "read only by adapter layers (layer_type 'trf_adp', checked)"),
        "adp_trf_idx": (_ANY, "read only by adapter layers (layer_type 'trf_adp', checked)"),
    },
    "task": {
        "max_keep_size": (_ANY, "skips long training utterances"),
        "label_rate": (_ANY, "the frame rate of training labels (a HuBERT task option)"),
        "multiple_train_files": (_ANY, "where the training manifests are"),
        "multi_corpus_keys": (_ANY, "training data mixing"),
        "multi_corpus_sampling_weights": (_ANY, "training data mixing"),
        "text_compression_level": (_ANY, "how label text is stored in memory"),
        "rebuild_batches": (_ANY, "training batch sampling"),
        "precompute_mask_config": (_ANY, "training masks precomputed by the data loader"),
        "post_save_script": (_ANY, "a script run after saving a checkpoint"),
        "subsample": (_ANY, "subsamples the training data"),
        "seed": (_ANY, "data loader shuffling"),
        # before dd106d9 the task copied model options to precompute training masks; the model keeps its own
        **{key: (_ANY, "the task's copy of a model option, once used to precompute training masks")
           for key in ("mask_length", "mask_prob", "mask_selection", "mask_other", "no_mask_overlap",
                       "mask_min_space", "mask_channel_length", "mask_channel_prob", "mask_channel_selection",
                       "mask_channel_other", "no_mask_channel_overlap", "mask_channel_min_space",
                       "conv_feature_layers", "encoder_embed_dim")},
    },
}


def _refuse_unsafe_drops(section_cfg: dict, section: str, unknown: list[str], path: Path) -> None:
    """Each model key this fairseq does not know must be safe to drop (UNKNOWN_CONFIG_KEYS), else a
    CheckpointError. Task keys are listed where known; an unlisted one is dropped with the warning."""
    policy = UNKNOWN_CONFIG_KEYS.get(section, {})
    for key in unknown:
        value = section_cfg[key]
        if key not in policy and section == "task":
            continue  # a task option (data, labels, training) never enters the model's forward: dropped, warned
        if key not in policy:
            raise CheckpointError(
                f"{path}: its {section} config has {key} = {value!r}, a key this fairseq does not know and that is "
                "not known to leave the features unchanged when dropped (textless_stack.loader.UNKNOWN_CONFIG_KEYS "
                "lists those that are): refusing rather than computing something other than the trained model."
            )
        neutral, why = policy[key]
        if neutral is not _ANY and value != neutral:  # 1.0 == 1, 0 == False: as fairseq reads them
            raise CheckpointError(
                f"{path}: its {section} config sets {key} = {value!r} ({why}), which this fairseq does not "
                f"implement: it would drop the key and compute {key} = {neutral!r}, a different model. "
                "Refusing rather than computing other features."
            )


def _builds_conv_pos_batch_norm(model_cfg: dict) -> bool:
    """Whether this fairseq's config dataclass for the model declares conv_pos_batch_norm (the backport)."""
    name = model_cfg.get("_name") or model_cfg.get("arch")
    dc = _dataclass_for("model", name) or _dataclass_for("model", _model_of_arch(name))
    return dc is not None and "conv_pos_batch_norm" in {f.name for f in dataclasses.fields(dc)}
