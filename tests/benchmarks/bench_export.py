"""`export` at real size: the parity figures and the time it takes, for HuBERT base's architecture and the
25 Hz mHuBERT's (BatchNorm positional conv, 640-sample hop), random weights, in one run.

    .venv/bin/python tests/benchmarks/bench_export.py [--seconds 4,10] [--format hf]

Audio: the bundled sample speech and noise+tone files of the given lengths. Prints, per model, the export
time and the certificate's figures: per-file max |diff| and mean cosine against fairseq (worst layer), and the
same when HF batches the files the way its docs say (zero padding, no attention mask for a group-norm model).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

warnings.filterwarnings("ignore")


def main() -> None:
    from textless_stack import export
    from textless_stack.testing import tiny

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", default="4,10", help="lengths of the extra audio files")
    ap.add_argument("--format", default="hf", choices=["hf", "safetensors"])
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        audio = [export.SAMPLE]
        for s in (float(x) for x in args.seconds.split(",")):
            t = np.arange(int(s * 16000)) / 16000
            path = tmp / f"tone{s:g}.wav"
            sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32),
                     16000)
            audio.append(path)
        print(f"audio: {', '.join(f'{p.name} {sf.info(p).duration:.1f} s' for p in audio)}")
        models = {
            "hubert-base architecture": dict(tiny.HUBERT_BASE),
            "mhubert-25hz architecture": dict(tiny.HUBERT_BASE, conv_pos_batch_norm=True,
                                              conv_feature_layers="[(512, 10, 5)] + [(512, 3, 2)] * 4 + "
                                                                  "[(512, 2, 2)] * 2 + [(512, 2, 2)]"),
        }
        print(f"{'model':28s} {'export s':>8s} {'per-file max|diff|':>18s} {'min cosine':>10s} "
              f"{'batched max|diff|':>17s} {'min cosine':>10s}")
        for name, fields in models.items():
            model, task, cfg = tiny.build("hubert", seed=0, **fields)
            ckpt = tiny.save(tiny.trainer_state(model, task, cfg), tmp / f"{name.split()[0]}.pt")
            start = time.perf_counter()
            report = export.export(export.ExportSpec(model=str(ckpt), output=tmp / name.split()[0], format=args.format,
                                                     audio=audio))
            took = time.perf_counter() - start
            per = [l for f in report["files"] if f["per_file"] for l in f["per_file"]["layers"]]
            bat = [l for f in report["files"] for l in f["batched"]["layers"]]
            print(f"{name:28s} {took:8.1f} {max(l['max_abs_diff'] for l in per):18.3g} "
                  f"{min(l['mean_cosine'] for l in per):10.6f} {max(l['max_abs_diff'] for l in bat):17.3g} "
                  f"{min(l['mean_cosine'] for l in bat):10.6f}  {report['status']}")


if __name__ == "__main__":
    main()
