"""The checks behind `textless-stack selftest`: the stack end to end, offline, with a generated tiny model.

Builds a tiny HuBERT with fairseq's own classes, saves it as fairseq's Trainer does, loads it back
through the strict loader (parity 0.0), extracts features from the bundled sample speech batched
together with a shorter copy (equal to the per-file reference), checks that the bf16-on-CPU
forward, built in fp32, computes this fairseq's function, and that a broken file fails alone.
Writes only under a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def checks() -> list[tuple[str, bool, str]]:
    """(name, passed, detail) for each check."""
    import numpy as np
    import torch

    from .. import audio
    from ..cpu_bf16 import CpuBf16Forward
    from ..encoder import DenseEncoder, pad_batch
    from ..loader import load_model
    from . import SAMPLES, tiny
    from .reference import extract, reference_features

    results = []
    with tempfile.TemporaryDirectory(prefix="textless-selftest-") as tmp:
        model, task, cfg = tiny.build("hubert", seed=5)
        path = tiny.save(tiny.trainer_state(model, task, cfg), Path(tmp) / "tiny.pt")
        loaded = load_model(path)
        wav = audio.load(next(SAMPLES.glob("*.flac")))
        same = (extract(model, wav[None]) - extract(loaded.model, wav[None])).abs().max().item()
        results.append(("strict load parity", same == 0.0, f"max|diff| {same}"))
        encoder = DenseEncoder(loaded.model, 2, False, torch.device("cpu"))
        short = wav[: wav.numel() // 3]
        batched = encoder.encode(encoder.chunks(wav) + encoder.chunks(short))
        worst = max(float((b - reference_features(loaded.model, w, 2, False)).abs().max())
                    for b, w in zip(batched, (wav, short)))
        results.append(("batched = per-file reference", worst <= 1e-4, f"max|diff| {worst:.2e}"))
        forward = CpuBf16Forward(loaded.model, 2, torch.float32)
        x, frames = forward(*pad_batch([wav, short]))
        worst = max(float((x[i, : int(frames[i])] - reference_features(loaded.model, w, 2, False)).abs().max())
                    for i, w in enumerate((wav, short)))
        results.append(("bf16 CPU forward's function = fairseq's", worst <= 1e-4, f"fp32 build, max|diff| {worst:.2e}"))
        bad = Path(tmp) / "bad.wav"
        bad.write_bytes(b"not audio")
        try:
            audio.load(bad)
            results.append(("broken file rejected", False, "it loaded"))
        except audio.AudioError as e:
            results.append(("broken file rejected", True, str(e)[:60]))
        results.append(("features finite", bool(np.isfinite(batched[0].numpy()).all()), f"{tuple(batched[0].shape)}"))
    return results
