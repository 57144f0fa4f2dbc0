"""The CPU side of `features`: how fast the product's real path runs when the model costs nothing.

    .venv/bin/python tests/benchmarks/bench_pipeline.py [--seconds 600] [--workers 1,2] [--f0-seconds 60]

The model is replaced by a stand-in that returns zeros of HuBERT-base's shape (768-dim, 50 Hz); the rest is
`pipeline.run` as the product runs it: planning, decoding and resampling in worker processes
(decoding.py), batching, the k-means (100 units, real assignment), atomic writes, assembly. Corpora of 10 s
files: 16 kHz FLAC, 44.1 kHz FLAC, 48 kHz WAV. Outputs: npy, dump, units only. Also printed: this machine's
raw single-thread decode speed per corpus (soundfile alone, then with each resampler), decoding alone in
the worker pool (the ceiling of the pipeline's figures), and YAAPT F0's audio-s/s per core (one worker,
`features --f0`).
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
# torch is imported inside the functions: each decoding worker re-runs this script, as it re-runs the product's
# console script (which imports no torch either), so the workers start as they do in the product
CORPORA = (("16 kHz FLAC", 16000, "flac"), ("44.1 kHz FLAC", 44100, "flac"), ("48 kHz WAV", 48000, "wav"))


class ZeroCostModel:
    """DenseEncoder's interface at no compute: HuBERT-base's geometry, zeros of its feature shape."""

    def __init__(self):
        from textless_stack.encoder import MAX_CHUNK, ConvGeometry

        self.geometry = ConvGeometry(((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2)
        self.max_chunk = MAX_CHUNK

    def chunks(self, wav):
        return [wav[i:i + self.max_chunk] for i in range(0, wav.numel(), self.max_chunk)]

    def _forward(self, chunks):
        """The padded output a model returns for the batch: [B, frames, 768], and each row's valid frames.
        Allocated for each batch, as the host's copy of a GPU's output is (encoder.py: `x.float().cpu()`)."""
        import torch

        frames = [self.geometry.frames(c.numel()) for c in chunks]
        return torch.zeros(len(chunks), max(frames), 768), frames

    def encode(self, chunks):
        x, frames = self._forward(chunks)
        return [x[i, :n] for i, n in enumerate(frames)]

    def encode_units(self, chunks, quantizer):
        x, frames = self._forward(chunks)
        units = quantizer.assign(x).numpy()  # the whole padded batch at once, as DenseEncoder.encode_units does
        return [x[i, :n] for i, n in enumerate(frames)], [units[i, :n] for i, n in enumerate(frames)]


def make_corpus(root: Path, rate: int, fmt: str, seconds: float) -> list:
    from textless_stack import inputs

    rng = np.random.default_rng(rate)
    root.mkdir(parents=True)
    t = np.arange(10 * rate) / rate
    for i in range(int(seconds // 10)):
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.normal(size=t.size)
        sf.write(root / f"u{i:04d}.{fmt}", wav.astype(np.float32), rate)
    return inputs.collect(str(root))


def raw_decode(files, resample: str | None) -> float:
    """Single thread: soundfile, then (if asked) a resampler; audio-s/s."""
    import soxr
    import torch
    import torchaudio.functional

    torch.set_num_threads(1)
    started, total = time.perf_counter(), 0.0
    for path in files:
        data, rate = sf.read(str(path), dtype="float32")
        total += data.shape[0] / rate
        if resample == "soxr" and rate != 16000:
            soxr.resample(data, rate, 16000, quality="HQ")
        elif resample == "torchaudio" and rate != 16000:
            torchaudio.functional.resample(torch.from_numpy(data), rate, 16000)
    torch.set_num_threads(os.cpu_count() or 1)
    return total / (time.perf_counter() - started)


def pool_decode(files, workers: int) -> float:
    """Decoding alone in the product's worker pool (decoding.Decoder, batches of 4 files; no model, no
    k-means, no writes): the ceiling of any pipeline figure with that many workers; audio-s/s."""
    from textless_stack import decoding

    paths, decoder = [str(p) for p in files], decoding.Decoder(workers, False)
    try:
        decoder.submit(paths[:4])  # the pool's start is not part of the rate
        [r.waveform() for r in decoder.next()]
        started, batches = time.perf_counter(), [paths[i:i + 4] for i in range(0, len(paths), 4)]
        for batch in batches:
            decoder.submit(batch)
        total = sum(r.waveform().size for _ in batches for r in decoder.next()) / 16000
        return total / (time.perf_counter() - started)
    finally:
        decoder.close()


def run_pipeline(items, out: Path, features: str, workers: int, quantizer, f0: bool = False) -> float:
    from textless_stack import outputs, pipeline

    layout = outputs.Layout(out, features, quantizer is not None, "all", 0, 1)
    started = time.perf_counter()
    summary = pipeline.run(pipeline.Job(items=items, layout=layout, encoder=ZeroCostModel(), quantizer=quantizer,
                                        batch_seconds=40.0, progress=False, workers=workers, f0=f0))
    assert summary.failed == 0, summary.failures[:3]
    return summary.audio_seconds / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600, help="audio per corpus")
    parser.add_argument("--workers", default="0,1,2", help="0: the one decoding thread (the CPU default)")
    parser.add_argument("--f0-seconds", type=float, default=60)
    args = parser.parse_args()

    import torch
    from textless_stack.kmeans import Quantizer

    quantizer = Quantizer(np.random.default_rng(0).normal(size=(100, 768)).astype(np.float32), torch.device("cpu"))
    workers = [int(w) for w in args.workers.split(",")]
    import soxr

    print(f"soxr {soxr.__version__}; torch {torch.__version__}; torch threads {torch.get_num_threads()}")
    print(f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} in this process's affinity); "
          f"{args.seconds:.0f} s of 10 s files per corpus; model: zero-cost stand-in; audio-s/s")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        for name, rate, fmt in CORPORA:
            items = make_corpus(tmp / name.replace(" ", "_"), rate, fmt, args.seconds)
            files = [it.path for it in items]
            raw = raw_decode(files, None)
            line = f"\n{name}: raw single-thread decode {raw:8.0f}"
            if rate != 16000:
                line += (f"; + soxr HQ {raw_decode(files, 'soxr'):7.0f}"
                         f"; + torchaudio sinc {raw_decode(files[:max(1, len(files) // 10)], 'torchaudio'):6.0f}")
            pool = max(workers) or len(os.sched_getaffinity(0))
            line += f"\n  ceiling: decoding alone in {pool} workers {pool_decode(files, pool):8.0f}"
            print(line)
            for features, q in (("npy", None), ("dump", None), ("none", quantizer)):
                label = "units only" if features == "none" else features
                figures = []
                for w in workers:
                    out = tmp / f"out-{rate}-{features}-{w}"
                    figures.append(run_pipeline(items, out, features, w, q))
                pool = [(w, f) for w, f in zip(workers, figures) if w > 0]
                speedup = f"  ({pool[-1][1] / pool[0][1]:.2f}x from {pool[0][0]} to {pool[-1][0]} workers)" \
                    if len(pool) > 1 else ""
                print(f"  {label:10s} " + "  ".join(f"{w} workers {f:8.0f}" for w, f in zip(workers, figures))
                      + speedup)
        items = make_corpus(tmp / "f0", 16000, "flac", args.f0_seconds)
        f0_rate = run_pipeline(items, tmp / "out-f0", "none", 1, quantizer, f0=True)
        print(f"\nF0 (YAAPT) in 1 worker, units only, 16 kHz FLAC: {f0_rate:.1f} audio-s/s per core")


if __name__ == "__main__":
    main()
