"""Audio in: any soundfile format -> mono float32 at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 16000


class AudioError(Exception):
    """This one file cannot be used; the run goes on with the others."""


def info(path: Path) -> tuple[int, int]:
    """(frames, sample rate) from the header, without decoding."""
    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError for non-audio
        raise AudioError(f"not readable as audio: {_first_line(e)}") from None
    return i.frames, i.samplerate


def load(path: Path) -> torch.Tensor:
    """Mono float32 waveform at 16 kHz (channels averaged, resampled with torchaudio's sinc resampler)."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"not readable as audio: {_first_line(e)}") from None
    if data.size == 0:
        raise AudioError("empty: no audio samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]))
    if not torch.isfinite(wav).all():
        raise AudioError("contains NaN or infinite samples")
    if rate != SAMPLE_RATE:
        import torchaudio.functional

        wav = torchaudio.functional.resample(wav, rate, SAMPLE_RATE)
    return wav


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
