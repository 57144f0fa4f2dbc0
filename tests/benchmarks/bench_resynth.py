"""CPU real-time factors of the resynthesis pipelines (random weights: speed only), tiny and full size.

    python tests/benchmarks/bench_resynth.py [--seconds 10] [--threads N]

Per pipeline: HuBERT (base or tiny) to the vocoder's layer + k-means, then the vocoder, on
SECONDS of audio. RTF = compute seconds / audio seconds (below 1 is faster than real time).
Needs textlesslib (an environment or image built with TEXTLESSLIB_SRC).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

warnings.filterwarnings("ignore")


def timed(fn, repeat=2):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from textless_stack.testing import tiny, tiny_vocoders
    from textless_stack.encoder import DenseEncoder
    from textless_stack.vocoders import Vocoder, VocoderFiles

    device = torch.device("cpu")
    wav = torch.randn(int(args.seconds * 16000)) * 0.1
    units = torch.randint(0, 100, (int(args.seconds * 50),)).tolist()
    print(f"CPU threads {torch.get_num_threads()}, {args.seconds:.0f} s of audio per measurement, best of 2")
    with tempfile.TemporaryDirectory() as tmp:
        for size in ("tiny", "full"):
            overrides = tiny.HUBERT_BASE if size == "full" else {}
            model, _, _ = tiny.build("hubert", seed=0, **overrides)
            for pipeline, layer, make in (
                ("GSLM Tacotron2+WaveGlow", 6, lambda root: tiny_vocoders.make_tacotron(
                    root, 100, size, max_decoder_steps=int(args.seconds * 22050 / 256))),
                ("Expresso CodeHiFiGAN", 9, lambda root: tiny_vocoders.make_hifigan(
                    root, 100, size, speakers=["a", "b"], styles=["x", "y"])),
            ):
                encoder = DenseEncoder(model, min(layer, len(model.encoder.layers)), False, device, "fp32")
                t_enc, _ = timed(lambda: encoder.encode(encoder.chunks(wav)))
                files = VocoderFiles.resolve(str(make(Path(tmp) / f"{size}-{layer}")))
                vocoder = Vocoder(files, device, max_decoder_steps=int(args.seconds * 22050 / 256))
                t_voc, out = timed(lambda: vocoder.synthesize(units, "bench", 0))
                seconds_out = len(out) / vocoder.sample_rate
                rtf_enc, rtf_voc = t_enc / args.seconds, t_voc / seconds_out
                print(f"{size:4s} {pipeline:26s} HuBERT RTF {rtf_enc:6.3f}  vocoder RTF {rtf_voc:6.3f} "
                      f"({seconds_out:.1f} s out at {vocoder.sample_rate} Hz)  pipeline RTF {rtf_enc + rtf_voc:6.3f}")


if __name__ == "__main__":
    main()
