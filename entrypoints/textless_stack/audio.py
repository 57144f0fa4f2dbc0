"""Audio in: any soundfile format -> mono float32 at 16 kHz."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
# soxr (libsoxr "HQ"), not torchaudio's sinc: the resampling alone measured 1.4-3.3x faster on two hosts, and it
# attenuates above 8 kHz where torchaudio's default filter leaks (tests/benchmarks/bench_pipeline.py prints both). It changes the features
# of resampled files, so every job records it.
RESAMPLE_QUALITY = "HQ"


def resampler() -> str:
    import soxr

    return f"soxr {soxr.__version__} {RESAMPLE_QUALITY}"


class AudioError(Exception):
    """This one file cannot be used; the run goes on with the others."""


@dataclass
class Decoded:
    wav: "torch.Tensor"   # mono float32 at SAMPLE_RATE
    rate: int             # the file's own sample rate
    channels: int         # the file's own channel count


def info(path: Path) -> tuple[int, int]:
    """(frames, sample rate) from the header, without decoding."""
    _probe(path)
    try:
        i = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError for non-audio
        raise AudioError(f"not readable as audio: {_first_line(e)}") from None
    return i.frames, i.samplerate


def load(path: Path) -> "torch.Tensor":
    return decode(path).wav


def decode(path: Path) -> Decoded:
    """Mono float32 waveform at 16 kHz (channels averaged, resampled with soxr), as a torch tensor."""
    import torch

    mono, rate, channels = read(path)
    return Decoded(torch.from_numpy(mono), rate, channels)


def read(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono float32 at 16 kHz, the file's rate, its channels), with numpy alone: what decoding workers run."""
    _probe(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"not readable as audio: {_first_line(e)}") from None
    if data.size == 0:
        raise AudioError("empty: no audio samples")
    mono = np.ascontiguousarray(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
    if not np.isfinite(mono).all():
        raise AudioError("contains NaN or infinite samples")
    if rate != SAMPLE_RATE:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY)
    return mono, rate, data.shape[1]


def _probe(path: Path) -> None:
    """Open with Python first: libsndfile says only "System error." for every OS error. (Decoding then
    goes by path: a file object would run Python inside libsndfile, where a SIGTERM is swallowed.)"""
    try:
        open(path, "rb").close()
    except OSError as e:
        raise AudioError(os_reason(e, path)) from None


def os_reason(e: OSError, path: Path) -> str:
    """'no such file: PATH', 'permission denied: PATH', ... (a dangling symlink says where it points)."""
    if e.errno == errno.ENOENT and os.path.islink(path):
        return f"broken symbolic link: {path} -> {os.readlink(path)} (no such file)"
    reasons = {errno.ENOENT: "no such file", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.ELOOP: "symbolic link loop", errno.EISDIR: "is a directory"}
    return f"{reasons.get(e.errno) or e.strerror or type(e).__name__}: {path}"


def _first_line(e: Exception) -> str:
    # libsndfile's own reason, without soundfile's "Error opening <file object>: " prefix
    text = (getattr(e, "error_string", None) or str(e)).strip().splitlines()
    return text[0] if text else type(e).__name__
