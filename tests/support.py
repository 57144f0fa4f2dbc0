"""Helpers shared by test modules (import as `support`)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import soundfile as sf


def write_audio(root, spec: dict) -> dict:
    """{relative path: seconds} -> files of noise+tones at 16 kHz (some at other rates/channels)."""
    rng = np.random.default_rng(42)
    for rel, seconds in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rate, channels = (22050, 2) if "stereo" in rel else (16000, 1)
        n = int(seconds * rate)
        t = np.arange(n) / rate
        signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.normal(size=n)
        data = np.stack([signal, signal * 0.5], 1) if channels == 2 else signal
        sf.write(path, data.astype(np.float32), rate)
    return spec


def cli(*args, env=None, timeout=600):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "textless_stack.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env)


SIF_ENV = "TEXTLESS_SIF"
TEXTLESSLIB_MISSING = "textlesslib source not available"  # the one counted skip reason


def built_sif():
    """(SIF path, apptainer state dir) of the SIF `make test` built; skips when this run built none."""
    from pathlib import Path

    import pytest

    sif = os.environ.get(SIF_ENV)
    if not sif:
        pytest.skip(f"no SIF built in this run ({SIF_ENV} unset): `make test` builds one")
    if not Path(sif).is_file():
        pytest.fail(f"{SIF_ENV}={sif} does not exist")
    return sif, os.environ.get("TEXTLESS_APPTAINER_STATE", str(Path(sif).parent / "apptainer"))
