"""The way out of the legacy stack: a strictly loaded fairseq HuBERT / wav2vec 2.0 model written as
- `hf`: a Hugging Face directory (config.json, model.safetensors, preprocessor_config.json) that
  `transformers.HubertModel` / `Wav2Vec2Model.from_pretrained` load with nothing missing or unused;
- `safetensors`: fairseq's own weight names in model.safetensors plus a plain-JSON config.json, readable
  without pickle, fairseq or omegaconf, and loadable again through `loader.load_model`;
and a k-means model as its centroids (kmeans.npy, kmeans.safetensors, kmeans.json).
Every fairseq tensor is either mapped or named as a pretraining head HF's encoder models do not have;
anything else is refused by name. parity.py proves the result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError
from .export_contract import FORMATS  # noqa: F401 - hf_export.FORMATS

SAFETENSORS_FORMAT = "textless-stack/fairseq-safetensors/1"  # config.json's "format" in a safetensors export
HF_POS_CONV_BATCH_NORM = "4.48"  # the transformers release that added HubertConfig.conv_pos_batch_norm

# pretraining-only parts: the loss heads and quantizers HF's HubertModel / Wav2Vec2Model leave out
_HEADS = ("label_embs_concat", "final_proj.", "project_q.", "quantizer.", "target_glu.", "project_inp.")

_RENAMES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),  # layer norm, every layer
    (r"^feature_extractor\.conv_layers\.0\.2\.", "feature_extractor.conv_layers.0.layer_norm."),     # group norm, the first only
    (r"^layer_norm\.", "feature_projection.layer_norm."),
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"\.self_attn\.", ".attention."),
    (r"\.self_attn_layer_norm\.", ".layer_norm."),
    (r"\.fc1\.", ".feed_forward.intermediate_dense."),
    (r"\.fc2\.", ".feed_forward.output_dense."),
    (r"^mask_emb$", "masked_spec_embed"),
]
# the positional conv: weight-normed Conv1d (HF: a weight_norm parametrization), or BatchNorm1d + Conv1d
_POS_CONV_WEIGHT_NORM = [
    (r"^encoder\.pos_conv\.0\.weight_g$", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"^encoder\.pos_conv\.0\.weight_v$", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"^encoder\.pos_conv\.0\.bias$", "encoder.pos_conv_embed.conv.bias"),
]
_POS_CONV_BATCH_NORM = [
    (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.batch_norm."),
    (r"^encoder\.pos_conv\.1\.", "encoder.pos_conv_embed.conv."),
]


class ExportError(UserError):
    """A model this export cannot write faithfully; the message says which part and why."""


@dataclass(frozen=True)
class Architecture:
    family: str               # "hubert" | "wav2vec2"
    hf_class: str             # transformers' bare encoder class
    normalize: bool           # the task's waveform normalisation (HF: do_normalize)
    group_norm: bool          # first conv normalised over time (HF: feat_extract_norm="group")
    pos_conv_batch_norm: bool

    @property
    def batches_with_attention_mask(self) -> bool:
        # HF's own rule for these models: a group-norm extractor is fed zero padding and no mask
        return not self.group_norm


def architecture(loaded) -> Architecture:
    from fairseq.models.hubert.hubert import HubertModel
    from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Model

    cfg = loaded.cfg.model
    if isinstance(loaded.model, HubertModel):
        family, hf_class = "hubert", "HubertModel"
    elif isinstance(loaded.model, Wav2Vec2Model):
        family, hf_class = "wav2vec2", "Wav2Vec2Model"
    else:
        raise ExportError(f"{loaded.path}: a {type(loaded.model).__name__}; export writes HuBERT, mHuBERT and "
                          "wav2vec 2.0 encoders")
    batch_norm = bool(cfg.get("conv_pos_batch_norm", False))
    if batch_norm and family != "hubert":
        raise ExportError(f"{loaded.path}: a wav2vec 2.0 model with a BatchNorm positional conv: transformers' "
                          "Wav2Vec2Config has no conv_pos_batch_norm")
    return Architecture(family, hf_class, bool(loaded.cfg.task.get("normalize", False)),
                        cfg.get("extractor_mode", "default") == "default", batch_norm)


def hf_config(loaded, arch: Architecture):
    """The transformers config equal to the fairseq model's, field by field."""
    import transformers

    cfg = loaded.cfg.model
    if cfg.get("conv_pos_depth", 1) != 1:
        raise ExportError(f"{loaded.path}: conv_pos_depth {cfg.conv_pos_depth}: transformers has no stacked "
                          "positional convolution")
    convs = _conv_layers(loaded.model)
    fields = dict(
        hidden_size=cfg.encoder_embed_dim, num_hidden_layers=cfg.encoder_layers,
        num_attention_heads=cfg.encoder_attention_heads, intermediate_size=cfg.encoder_ffn_embed_dim,
        hidden_act=cfg.activation_fn, conv_dim=[c[0] for c in convs], conv_kernel=[c[1] for c in convs],
        conv_stride=[c[2] for c in convs], conv_bias=bool(cfg.conv_bias),
        feat_extract_norm="group" if arch.group_norm else "layer", feat_extract_activation="gelu",
        num_conv_pos_embeddings=cfg.conv_pos, num_conv_pos_embedding_groups=cfg.conv_pos_groups,
        do_stable_layer_norm=bool(cfg.layer_norm_first), layer_norm_eps=1e-5,
        architectures=[arch.hf_class],
    )
    if arch.family == "hubert":
        config_class = transformers.HubertConfig
        fields["feat_proj_layer_norm"] = True
        if arch.pos_conv_batch_norm:
            if "conv_pos_batch_norm" not in config_class().to_dict():
                raise ExportError(f"{loaded.path}: its positional conv starts with a BatchNorm, which transformers "
                                  f"{transformers.__version__} cannot express (HubertConfig.conv_pos_batch_norm "
                                  f"came in {HF_POS_CONV_BATCH_NORM})")
            fields["conv_pos_batch_norm"] = True
    else:
        config_class = transformers.Wav2Vec2Config
    return config_class(**fields)


def _conv_layers(model) -> list[tuple[int, int, int]]:
    """(dim, kernel, stride) of each conv layer, read off the built model rather than re-parsing its config."""
    convs = [block[0] for block in model.feature_extractor.conv_layers]
    return [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs]


def hf_weights(state: dict[str, torch.Tensor], pos_conv_batch_norm: bool) -> dict[str, torch.Tensor]:
    """fairseq names -> transformers names; pretraining heads left out, nothing else."""
    renames = (_POS_CONV_BATCH_NORM if pos_conv_batch_norm else _POS_CONV_WEIGHT_NORM) + _RENAMES
    out = {}
    for key, value in state.items():
        if key.startswith(_HEADS):
            continue
        new = key
        for pattern, repl in renames:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def to_hf(loaded):
    """A transformers model holding exactly the fairseq model's weights (strict: every tensor in both)."""
    import transformers

    arch = architecture(loaded)
    config = hf_config(loaded, arch)
    model = getattr(transformers, arch.hf_class)(config).eval()
    weights = hf_weights(loaded.model.state_dict(), arch.pos_conv_batch_norm)
    expected = model.state_dict()
    if loaded.model.post_extract_proj is None:  # fairseq skips the projection when the dims agree; HF always has one
        dim = config.hidden_size
        weights["feature_projection.projection.weight"] = torch.eye(dim)
        weights["feature_projection.projection.bias"] = torch.zeros(dim)
    missing = sorted(set(expected) - set(weights))
    unused = sorted(set(weights) - set(expected))
    misshapen = sorted(k for k in set(weights) & set(expected) if weights[k].shape != expected[k].shape)
    if missing or unused or misshapen:
        raise ExportError(f"{loaded.path}: no exact transformers {arch.hf_class} for it: "
                          f"missing {missing[:3]}, unused {unused[:3]}, misshapen {misshapen[:3]}")
    model.load_state_dict(weights, strict=True)
    return model, arch


def write_hf(loaded, directory: Path) -> Architecture:
    import transformers

    model, arch = to_hf(loaded)
    model.save_pretrained(directory, safe_serialization=True)
    transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=arch.normalize,
        return_attention_mask=arch.batches_with_attention_mask,
    ).save_pretrained(directory)
    return arch


def write_safetensors(loaded, directory: Path) -> Architecture:
    """fairseq's weight names and its config as plain JSON: what `load_safetensors_export` rebuilds from."""
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    arch = architecture(loaded)
    state = {k: v.detach().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "format": SAFETENSORS_FORMAT,
        "family": arch.family,
        "model": OmegaConf.to_container(loaded.cfg.model, resolve=True),
        "task": OmegaConf.to_container(loaded.cfg.task, resolve=True),
        "task_state": _task_state_json(loaded.task),
    }
    (directory / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    return arch


def load_safetensors_export(directory: Path):
    """A safetensors export back into fairseq's classes, through the same strict loader as a checkpoint."""
    from safetensors.torch import load_file

    from .integrity import verify
    from .loader import load_model

    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for p in (config_path, weights_path):
        if not p.is_file():
            raise ExportError(f"{p}: missing: not a textless-stack safetensors export")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{config_path}: not JSON: {e}") from None
    if config.get("format") != SAFETENSORS_FORMAT:
        raise ExportError(f"{config_path}: format {config.get('format')!r}, not {SAFETENSORS_FORMAT!r}")
    # the fields fairseq's checkpoint upgrade reads, as a freshly trained checkpoint has them
    state = {"cfg": {"model": config["model"], "task": config["task"]}, "model": load_file(str(weights_path)),
             "task_state": _task_state_from_json(config.get("task_state") or {}),
             "optimizer_history": [{"criterion_name": None, "optimizer_name": None, "lr_scheduler_state": {},
                                    "num_updates": 0}], "extra_state": {"train_iterator": {"epoch": 0}}}
    return load_model(verify(weights_path), state=state)


# fairseq's checkpoints pickle the task's label dictionaries (HuBERT builds its label embeddings from
# their sizes, and fairseq 0.12 reads them from disk when they are absent); here they are plain JSON.
_DICTIONARY_FIELDS = ("bos_word", "unk_word", "pad_word", "eos_word", "symbols", "count", "indices",
                      "bos_index", "pad_index", "eos_index", "unk_index", "nspecial")


def _task_state_json(task) -> dict:
    from fairseq.data import Dictionary

    def encode(d):
        if d is None:
            return None
        if not isinstance(d, Dictionary):
            raise ExportError(f"the task's state holds a {type(d).__name__}, which a safetensors export cannot "
                              "carry without pickle")
        return {f: getattr(d, f) for f in _DICTIONARY_FIELDS if hasattr(d, f)}

    state = task.state_dict() if task is not None else {}
    return {k: [encode(d) for d in v] if isinstance(v, (list, tuple)) else encode(v) for k, v in state.items()}


def _task_state_from_json(saved: dict) -> dict:
    from fairseq.data import Dictionary

    def decode(fields):
        if fields is None:
            return None
        d = Dictionary()
        d.__dict__.update(fields)
        return d

    return {k: [decode(x) for x in v] if isinstance(v, list) else decode(v) for k, v in saved.items()}


def write_kmeans(centroids: np.ndarray, directory: Path, dense: dict, layer: int, source: dict) -> None:
    from safetensors.numpy import save_file

    centroids = np.ascontiguousarray(centroids)
    np.save(directory / "kmeans.npy", centroids)
    save_file({"cluster_centers": centroids}, str(directory / "kmeans.safetensors"))
    record = {
        "dense_model": dense, "layer": layer, "k": int(centroids.shape[0]), "dim": int(centroids.shape[1]),
        "dtype": str(centroids.dtype), "source": source,
        "assignment": "unit = argmin_j ||x - c_j||^2 over the rows c_j of kmeans.npy (squared Euclidean "
                      "distance, nearest centroid, the lowest index on a tie), x one feature frame of the layer "
                      "above; sklearn's KMeans.predict",
    }
    (directory / "kmeans.json").write_text(json.dumps(record, indent=1) + "\n")
