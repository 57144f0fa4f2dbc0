"""Vocoder checkpoints built from textlesslib's own classes, saved the way its registry files are.

For tests and the speed benchmark (random weights): `size="tiny"` trains nothing and runs in
milliseconds; `size="full"` has the published architectures (GSLM Tacotron2 + WaveGlow-256,
Expresso CodeHiFiGAN), so real-time factors measured with it are the real models'.
Each builder writes the files plus a vocoder JSON that `resynth --vocoder` accepts.
"""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import torch


def _tacotron_hparams(n_units: int, size: str, max_decoder_steps: int) -> Namespace:
    full = size == "full"
    return Namespace(
        n_symbols=n_units + 3, symbols_embedding_dim=512 if full else 16,
        encoder_kernel_size=5, encoder_n_convolutions=3 if full else 1, encoder_embedding_dim=512 if full else 16,
        n_frames_per_step=1, decoder_rnn_dim=1024 if full else 16, prenet_dim=256 if full else 16,
        max_decoder_steps=max_decoder_steps, gate_threshold=0.5, p_attention_dropout=0.1, p_decoder_dropout=0.1,
        attention_rnn_dim=1024 if full else 16, attention_dim=128 if full else 8,
        attention_location_n_filters=32 if full else 4, attention_location_kernel_size=31 if full else 3,
        postnet_embedding_dim=512 if full else 16, postnet_kernel_size=5, postnet_n_convolutions=5 if full else 2,
        mask_padding=True, fp16_run=False, obs_dim=0, obs_n_class=1, lat_dim=0, lat_n_convolutions=0,
        lat_n_filters=0, lat_kernel_size=0, lat_n_blstms=0,
        sampling_rate=22050, n_mel_channels=80, text_or_code="code", code_key="km", collapse_code=True,
        add_sos=False, add_eos=False, code_dict=None,
    )


def _waveglow_hparams(size: str) -> dict:
    full = size == "full"  # waveglow_256channels
    return dict(n_mel_channels=80, n_flows=12 if full else 2, n_group=8, n_early_every=4, n_early_size=2,
                WN_config=dict(n_layers=8 if full else 2, n_channels=256 if full else 8, kernel_size=3))


def make_tacotron(root: Path, n_units: int = 100, size: str = "tiny", seed: int = 0,
                  max_decoder_steps: int = 60) -> Path:
    """GSLM's files: tts_checkpoint_best.pt {hparams, model_dict}, code_dict, WaveGlow {hparams, model_dict}."""
    from textless.vocoders.tacotron2.glow import WaveGlow
    from textless.vocoders.tacotron2.model import Tacotron2

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    hparams = _tacotron_hparams(n_units, size, max_decoder_steps)
    tacotron = Tacotron2(hparams)
    # random weights would often stop at the first frame: decode to max_decoder_steps instead
    torch.nn.init.constant_(tacotron.decoder.gate_layer.linear_layer.bias, -10.0)
    torch.save({"hparams": hparams, "model_dict": tacotron.state_dict()}, root / "tts_checkpoint_best.pt")
    (root / "code_dict").write_text("".join(f"{i}\n" for i in range(n_units)))
    wg_hparams = _waveglow_hparams(size)
    waveglow = WaveGlow(**wg_hparams)
    torch.save({"hparams": wg_hparams, "model_dict": waveglow.state_dict()}, root / "waveglow.pt")
    spec = {"kind": "tacotron", "model": "tts_checkpoint_best.pt", "codes": "code_dict", "waveglow": "waveglow.pt"}
    (root / "vocoder.json").write_text(json.dumps(spec))
    return root / "vocoder.json"


def _hifigan_config(n_units: int, size: str, speakers: list | None, styles: list | None, durations: bool,
                    hop: int = 320) -> dict:
    full = size == "full"  # the Expresso CodeHiFiGAN (16 kHz, 50 Hz units: 320 samples per unit)
    emb = 128 if full else 8
    # 320 samples per unit (50 Hz, Expresso) or 640 (25 Hz, TWIST): one more x2 upsampling layer
    extra = {320: 0, 640: 1}[hop]
    cfg = {
        "resblock": "1", "upsample_rates": [5, 4, 4, 2, 2] + [2] * extra,
        "upsample_kernel_sizes": [11, 8, 8, 4, 4] + [4] * extra,
        "upsample_initial_channel": 512 if full else 64, "resblock_kernel_sizes": [3, 7, 11] if full else [3],
        "resblock_dilation_sizes": [[1, 3, 5]] * (3 if full else 1), "num_embeddings": n_units,
        "embedding_dim": emb, "model_in_dim": emb * (1 + bool(speakers) + bool(styles)), "sampling_rate": 16000,
    }
    if speakers:
        cfg.update(multispkr=True, num_speakers=len(speakers))
    if styles:
        cfg.update(multistyle=True, num_styles=len(styles))
    if durations:
        cfg["dur_predictor_params"] = {"encoder_embed_dim": emb, "var_pred_hidden_dim": emb,
                                       "var_pred_kernel_size": 3, "var_pred_dropout": 0.5}
    return cfg


def make_hifigan(root: Path, n_units: int = 100, size: str = "tiny", seed: int = 0, speakers: list | None = None,
                 styles: list | None = None, durations: bool = False, hop: int = 320) -> Path:
    """Expresso's files: generator.pt {generator}, config.json, speakers.txt, styles.txt.
    hop=640: a 25 Hz vocoder like TWIST's (single speaker, with a duration predictor when durations=True)."""
    from textless.vocoders.hifigan.generator import CodeGenerator

    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = _hifigan_config(n_units, size, speakers, styles, durations, hop)
    generator = CodeGenerator(cfg)
    torch.save({"generator": generator.state_dict()}, root / "generator.pt")
    (root / "config.json").write_text(json.dumps(cfg))
    spec = {"kind": "hifigan", "model": "generator.pt", "config": "config.json"}
    for name, values in (("speakers", speakers), ("styles", styles)):
        if values:
            (root / f"{name}.txt").write_text("".join(f"{v}\n" for v in values))
            spec[name] = f"{name}.txt"
    (root / "vocoder.json").write_text(json.dumps(spec))
    return root / "vocoder.json"
