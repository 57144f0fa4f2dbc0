"""Unit-LM sampling speed: fairseq's own path (textlesslib's sampler: one prompt at a time) against ours,
side by side in one run, on a real-size GSLM ULM architecture (transformer_lm_big, random weights).

    .venv/bin/python tests/benchmarks/bench_continue.py [--prompts 16] [--new-tokens 100] [--device cpu|cuda]

Prompts of 50 units (100-unit vocabulary), --new-tokens sampled after each. Prints generated tokens per
second for fairseq at batch 1 and at the full batch, and ours at batch 1 and the full batch, with the
ratios and the machine's matmul peak; at batch 1 it also checks that both give identical tokens.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_features import matmul_gflops, sync  # noqa: E402

warnings.filterwarnings("ignore")
UNITS = 100


def make_lm(work: Path) -> Path:
    """fairseq-train one update of transformer_lm_big (GSLM's ULM architecture) on a tiny unit corpus."""
    rng = random.Random(0)
    text = "".join(" ".join(str(rng.randrange(UNITS)) for _ in range(60)) + "\n" for _ in range(40))
    (work / "train.txt").write_text(text)
    bin_dir = Path(sys.executable).parent
    subprocess.run([bin_dir / "fairseq-preprocess", "--only-source", "--trainpref", work / "train.txt",
                    "--validpref", work / "train.txt", "--destdir", work / "lm", "--workers", "1"],
                   check=True, capture_output=True)
    subprocess.run([bin_dir / "fairseq-train", work / "lm", "--task", "language_modeling",
                    "--arch", "transformer_lm_big", "--share-decoder-input-output-embed", "--sample-break-mode", "eos",
                    "--tokens-per-sample", "128", "--max-tokens", "256", "--optimizer", "adam", "--lr", "1e-5",
                    "--max-update", "1", "--save-dir", work / "lm", "--no-epoch-checkpoints", "--cpu"], check=True, capture_output=True)
    return work / "lm"


def fairseq_hub(lm: Path, device):
    from fairseq import hub_utils
    from fairseq.hub_utils import GeneratorHubInterface

    x = hub_utils.from_pretrained(str(lm), "checkpoint_best.pt", str(lm), archive_map=None, bpe=None,
                                  load_checkpoint_heads=True, sample_break_mode="eos")
    return GeneratorHubInterface(x["args"], x["task"], x["models"]).eval().to(device)


def fairseq_sample(hub, prompts, seed, new_tokens, batch_size):
    from fairseq import utils

    hub.cfg.dataset.batch_size, hub.cfg.dataset.max_tokens = batch_size, None  # batches of batch_size prompts
    utils.set_torch_seed(seed)
    d = hub.task.source_dictionary
    tokens = [d.encode_line(" ".join(map(str, p)), add_if_not_exist=False).long() for p in prompts]
    with torch.inference_mode():
        hypos = hub.generate(tokens, beam=1, sampling=True, temperature=0.7, max_len_a=0.0,
                             max_len_b=len(prompts[0]) + new_tokens)
    return [[int(d[t]) for t in h[0]["tokens"].tolist() if t >= d.nspecial and d[t].isdigit()] for h in hypos]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    from textless_stack.ulm import Sampling, UnitLM

    rng = random.Random(1)
    prompts = [[rng.randrange(UNITS) for _ in range(50)] for _ in range(args.prompts)]
    with tempfile.TemporaryDirectory() as tmp:
        lm_dir = make_lm(Path(tmp))
        hub, ours = fairseq_hub(lm_dir, device), UnitLM(lm_dir, device)
        print(f"{device}: matmul fp32 {matmul_gflops(device, torch.float32):.0f} GFLOP/s; transformer_lm_big, "
              f"{sum(p.numel() for p in hub.models[0].parameters()) / 1e6:.0f} M parameters; "
              f"{args.prompts} prompts of 50 units, {args.new_tokens} new tokens each")

        def timed(fn):
            sync(device)
            started = time.perf_counter()
            result = fn()
            sync(device)
            return result, args.prompts * args.new_tokens / (time.perf_counter() - started)

        ref1, fs1 = timed(lambda: [fairseq_sample(hub, [p], i, args.new_tokens, 1)[0] for i, p in enumerate(prompts)])
        got1, us1 = timed(lambda: [ours.sample([p], Sampling(max_len_b=50 + args.new_tokens, batch_size=1), i)[0]
                                   for i, p in enumerate(prompts)])
        _, fsN = timed(lambda: fairseq_sample(hub, prompts, 0, args.new_tokens, args.prompts))
        _, usN = timed(lambda: ours.sample(prompts, Sampling(max_len_b=50 + args.new_tokens,
                                                             batch_size=args.prompts), 0))
        print(f"batch 1 tokens identical: {got1 == ref1}")
        print(f"fairseq, batch 1:            {fs1:8.1f} tokens/s")
        print(f"ours, batch 1:               {us1:8.1f} tokens/s  ({us1 / fs1:.2f}x fairseq batch 1)")
        print(f"fairseq, batch {args.prompts:<3d}:         {fsN:8.1f} tokens/s")
        print(f"ours, batch {args.prompts:<3d}:            {usN:8.1f} tokens/s  ({usN / fs1:.2f}x fairseq batch 1, "
              f"{usN / fsN:.2f}x fairseq batch {args.prompts})")


if __name__ == "__main__":
    main()
