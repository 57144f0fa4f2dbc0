"""What `features --f0` costs: YAAPT's speed per core, and a features run with and without F0, side by side.

    .venv/bin/python tests/benchmarks/bench_f0.py [--minutes 1]

F0 (f0.track, textlesslib's get_f0) runs in the decoding thread, one batch ahead of the model, so a run
with --f0 costs max(model, decode + F0) rather than their sum, as long as F0 keeps up. Prints:
- YAAPT alone, one core: audio-seconds per second;
- `features --units` with the HuBERT-base architecture (random weights) on this CPU, without and with --f0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

warnings.filterwarnings("ignore")


def corpus(root: Path, minutes: float) -> float:
    rng, total, i = np.random.default_rng(0), 0.0, 0
    while total < minutes * 60:
        seconds = float(np.clip(rng.lognormal(np.log(6), 0.5), 2, 15))
        t = np.arange(int(seconds * 16000)) / 16000
        f = rng.uniform(90, 250) * (1 + 0.15 * np.sin(2 * np.pi * 0.5 * t))
        phase = 2 * np.pi * np.cumsum(f) / 16000
        wav = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)) + 0.01 * rng.normal(size=t.size)
        sf.write(root / f"utt{i:04d}.wav", wav.astype(np.float32), 16000)
        total, i = total + seconds, i + 1
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=1.0)
    args = ap.parse_args()
    import joblib
    import torch
    from sklearn.cluster import KMeans

    from textless_stack import f0
    from textless_stack.jobs import FeaturesSpec, features
    from textless_stack.testing import tiny

    print(f"CPU: {os.cpu_count()} cores visible; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "audio").mkdir()
        seconds = corpus(tmp / "audio", args.minutes)
        wavs = [sf.read(p, dtype="float32")[0] for p in sorted((tmp / "audio").glob("*.wav"))]
        started = time.perf_counter()
        for w in wavs:
            f0.track(w)
        yaapt = seconds / (time.perf_counter() - started)
        print(f"YAAPT (f0.track), one core: {yaapt:.1f} audio-s/s over {seconds:.0f} s of audio")
        model, task, cfg = tiny.build("hubert", seed=0, **tiny.HUBERT_BASE)
        ckpt = tiny.save(tiny.trainer_state(model, task, cfg), tmp / "hubert.pt")
        km = tmp / "km.bin"
        joblib.dump(KMeans(n_clusters=100, n_init=1, random_state=0).fit(np.random.default_rng(0).normal(size=(2000, 768))), km)
        rates = {}
        for with_f0 in (False, True):
            spec = FeaturesSpec(inputs=(str(tmp / "audio"),), output=tmp / f"out{with_f0}", model=str(ckpt), layer=6,
                                units=str(km), features="none", f0=with_f0, device="cpu", progress=False)
            started = time.perf_counter()
            summary = features(spec)
            rates[with_f0] = summary.audio_seconds / (time.perf_counter() - started)
        print(f"features --units (HuBERT base, fp32, CPU):        {rates[False]:.1f} audio-s/s")
        print(f"features --units --f0:                            {rates[True]:.1f} audio-s/s "
              f"({rates[True] / rates[False]:.2f}x; the sum of both would be "
              f"{1 / (1 / rates[False] + 1 / yaapt):.1f} audio-s/s)")


if __name__ == "__main__":
    main()
