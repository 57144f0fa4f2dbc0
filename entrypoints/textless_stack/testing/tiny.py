"""Tiny HuBERT / wav2vec 2.0 checkpoints built with fairseq's own classes.

For tests, and for the offline demo: same architecture family and frame rate as the
real models (320-sample hop at 16 kHz), a few layers, random weights, saved the way
fairseq's Trainer saves (cfg container, task_state with dictionaries, optimizer
history, extra_state with numpy values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# 7 conv layers, strides 5*2^6 = 320 samples per frame, receptive field 400 samples: like HuBERT base
CONV_LAYERS = "[(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2"
TINY_ENCODER = dict(
    encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
    conv_feature_layers=CONV_LAYERS, conv_pos=16, conv_pos_groups=4, final_dim=16,
)


# HuBERT base's architecture (hubert_base_ls960.pt), for speed measurements with random weights
HUBERT_BASE = dict(
    encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072, encoder_attention_heads=12,
    conv_feature_layers="[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2", conv_pos=128,
    conv_pos_groups=16, final_dim=256,
)


def build(kind: str = "hubert", seed: int = 0, normalize: bool = False, **overrides):
    """Return (model, task, cfg) for a tiny model of `kind` ('hubert' or 'wav2vec2')."""
    from fairseq import tasks
    from fairseq.data import Dictionary
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf, open_dict

    torch.manual_seed(seed)
    if kind == "hubert":
        from fairseq.models.hubert.hubert import HubertConfig as ModelConfig
        from fairseq.tasks.hubert_pretraining import HubertPretrainingConfig

        task_cfg = HubertPretrainingConfig(data="unused", labels=["km"], label_rate=50, normalize=normalize)
        task_name, model_name = "hubert_pretraining", "hubert"
    elif kind == "wav2vec2":
        from fairseq.models.wav2vec.wav2vec2 import Wav2Vec2Config as ModelConfig
        from fairseq.tasks.audio_pretraining import AudioPretrainingConfig

        task_cfg = AudioPretrainingConfig(data="unused", normalize=normalize)
        task_name, model_name = "audio_pretraining", "wav2vec2"
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}")
    model_fields = {**TINY_ENCODER, **overrides}
    model_fields.pop("label_rate", None)
    cfg = OmegaConf.structured(FairseqConfig)
    with open_dict(cfg):
        cfg.task = OmegaConf.structured(task_cfg)
        cfg.task._name = task_name
        cfg.model = OmegaConf.structured(ModelConfig(**model_fields))
        cfg.model._name = model_name
    task = tasks.setup_task(cfg.task)
    if kind == "hubert":
        labels = Dictionary()
        for i in range(20):
            labels.add_symbol(str(i))
        task.load_state_dict({"dictionaries": [labels]})
    model = task.build_model(cfg.model)
    # random, non-trivial weight-norm gains so that a dropped or mis-mapped tensor shows up
    for name, p in model.named_parameters():
        if name.endswith("weight_g"):
            p.data.uniform_(0.5, 1.5)
    return model.eval(), task, cfg


def trainer_state(model, task, cfg) -> dict:
    """The dictionary fairseq's Trainer writes for a checkpoint."""
    from omegaconf import OmegaConf

    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    return {
        "args": None,
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "criterion": None,
        "optimizer_history": [{
            "criterion_name": "HubertCriterion", "optimizer_name": "Adam",
            "lr_scheduler_state": {"best": np.float64(3.25)}, "num_updates": 10,
        }],
        "task_state": task.state_dict(),
        "extra_state": {
            "metrics": {}, "previous_training_time": 12.5,
            "train_iterator": {"epoch": 1, "iterations_in_epoch": 10, "shuffle": True},
            "val_loss": np.float64(3.25), "best": np.array([3.25, 3.5], dtype=np.float32),
        },
        "last_optimizer_state": optimizer.state_dict(),
    }


def save(state: dict, path: Path) -> Path:
    from fairseq.checkpoint_utils import torch_persistent_save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch_persistent_save(state, str(path))
    return path


def make_checkpoint(path: Path, kind: str = "hubert", seed: int = 0) -> Path:
    model, task, cfg = build(kind, seed)
    return save(trainer_state(model, task, cfg), path)
