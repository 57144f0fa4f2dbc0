"""Throughput of `features` against a textlesslib-equivalent per-file loop, side by side in one run.

    .venv/bin/python tests/benchmarks/bench_features.py [--minutes 5] [--device cpu|cuda] [--batch-seconds 0,24]

HuBERT-base architecture with random weights (speed does not depend on the weights), layer 6,
files of 1-20 s. The reference is textlesslib's HubertFeatureReader loop: one file at a time,
unbatched, fp32, 100 s chunks. Both read the same files from disk and write .npy features.
Prints audio-seconds per second, ratios, achieved GFLOP/s against measured matmul GFLOP/s,
and, for reduced precision, unit agreement with the fp32 reference. Batch sizes follow the
product's per-device policy (precision.policy) unless --batch-seconds lists others
to compare for the reduced precision.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

warnings.filterwarnings("ignore")
# torch only inside functions: each decoding worker re-runs this script (as it re-runs the product's console
# script, which imports no torch), so `--workers` is measured as the product runs it
GFLOP_PER_AUDIO_SECOND = 9.6  # HuBERT base to layer 6


def make_corpus(root: Path, minutes: float, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    total, i = 0.0, 0
    while total < minutes * 60:
        seconds = float(np.clip(rng.lognormal(np.log(6), 0.7), 1, 20))
        n = int(seconds * 16000)
        t = np.arange(n) / 16000
        wav = 0.2 * np.sin(2 * np.pi * rng.uniform(80, 300) * t * (1 + 0.1 * np.sin(t))) + 0.05 * rng.normal(size=n)
        sf.write(root / f"utt{i:04d}.wav", wav.astype(np.float32), 16000)
        total, i = total + n / 16000, i + 1
    return total


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 2048, repeat: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync(device)
    return 2 * n ** 3 * repeat / (time.perf_counter() - t) / 1e9


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def reference_loop(model, files, out: Path, device) -> float:
    import torch

    from textless_stack.testing.reference import reference_features

    t = time.perf_counter()
    for f in files:
        wav, _ = sf.read(f, dtype="float32")  # textlesslib reads with soundfile too
        feats = reference_features(model, torch.from_numpy(wav).to(device), 6, False)
        np.save(out / (f.stem + ".npy"), feats.float().cpu().numpy())
    sync(device)
    return time.perf_counter() - t


def ours(model, corpus: Path, out: Path, device, dtype: str, batch_seconds: float, workers=None) -> float:
    from textless_stack import inputs, outputs, pipeline
    from textless_stack.encoder import DenseEncoder

    job = pipeline.Job(items=inputs.collect(str(corpus)), layout=outputs.Layout(out, "npy", False, "bench", 0, 1),
                       encoder=DenseEncoder(model, 6, False, device, dtype), batch_seconds=batch_seconds,
                       progress=False, workers=workers)
    t = time.perf_counter()
    pipeline.run(job)
    sync(device)
    return time.perf_counter() - t


def main():
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-seconds", default=None, help="comma-separated batch sizes to run the low precision at")
    ap.add_argument("--workers", type=int, default=None,
                    help="decoding processes (default: the product's, the CPUs; 0: one thread)")
    args = ap.parse_args()
    device = torch.device(args.device)
    from textless_stack.testing import tiny

    def build():  # same seed, same weights; each run gets its own copy (reduced precision casts it in place)
        return tiny.build("hubert", seed=0, **tiny.HUBERT_BASE)[0].to(device).eval()

    model = build()
    from textless_stack.precision import policy

    low = "bf16" if device.type == "cpu" else "fp16"
    batch32 = policy(device.type, "fp32").batch_seconds
    low_batches = ([float(b) for b in args.batch_seconds.split(",")] if args.batch_seconds
                   else [policy(device.type, low).batch_seconds])
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        audio_s = make_corpus(corpus, args.minutes)
        files = sorted(corpus.glob("*.wav"))
        print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else torch.get_num_threads()} "
              f"{'' if device.type == 'cuda' else 'threads'}), torch {torch.__version__}")
        print(f"corpus: {len(files)} files, {audio_s:.0f} s of audio, 1-20 s each")
        peak32 = matmul_gflops(device, torch.float32)
        peak_low = matmul_gflops(device, {"bf16": torch.bfloat16, "fp16": torch.float16}[low])
        print(f"matmul: fp32 {peak32:.0f} GFLOP/s, {low} {peak_low:.0f} GFLOP/s")
        # warm-up both paths on a few files
        (Path(tmp) / "w").mkdir()
        reference_loop(model, files[:2], Path(tmp) / "w", device)
        runs = {}
        for name, fn in [
            ("reference fp32 (per file)", lambda o: reference_loop(model, files, o, device)),
            (f"ours fp32 (batch {batch32:.0f} s)", lambda o: ours(build(), corpus, o, device, "fp32", batch32,
                                                                   args.workers)),
        ] + [(f"ours {low} (batch {b:.0f} s)", lambda o, b=b: ours(build(), corpus, o, device, low, b, args.workers))
             for b in low_batches]:
            out = Path(tmp) / "runs" / str(len(runs))
            out.mkdir(parents=True)
            seconds = fn(out)
            runs[name] = (seconds, out)
        ref_seconds, ref_out = runs["reference fp32 (per file)"]
        ref_feats = {f.stem: np.load(ref_out / (f.stem + ".npy")) for f in files}
        from sklearn.cluster import MiniBatchKMeans

        sample = np.concatenate(list(ref_feats.values()))[::7]
        km = MiniBatchKMeans(n_clusters=100, random_state=0, n_init=3).fit(sample)
        for name, (seconds, out) in runs.items():
            rate = audio_s / seconds
            line = (f"{name:28s} {rate:8.1f} audio-s/s ({rate:.0f}x real time)  x{ref_seconds / seconds:5.2f} vs reference"
                    f"  {rate * GFLOP_PER_AUDIO_SECOND:7.0f} GFLOP/s")
            if not name.startswith("reference"):
                got = {f.stem: np.load(out / "features" / (f.stem + ".npy")) for f in files}
                diff = max(float(np.abs(got[k] - ref_feats[k]).max()) for k in got)
                agree = np.mean(np.concatenate([km.predict(got[k]) == km.predict(ref_feats[k]) for k in got]))
                line += f"  max|diff| {diff:.2e}  units agree {agree * 100:.2f}%"
            print(line)
        print(f"(matmul peak: fp32 {peak32:.0f}, {low} {peak_low:.0f} GFLOP/s; HuBERT base to layer 6 = "
              f"{GFLOP_PER_AUDIO_SECOND} GFLOP per audio second)")


if __name__ == "__main__":
    main()
