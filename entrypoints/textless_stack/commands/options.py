"""Command-line options shared by `features` and `resynth` (not a command): the spec's fields, said once."""

from __future__ import annotations

from pathlib import Path

from .. import precision


def add_input_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="directory, glob, .tsv manifest or .jsonl")
    p.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    p.add_argument("--model", default=None,
                   help="registry name or checkpoint path (default: the k-means model's, else hubert-base-ls960)")
    p.add_argument("--user-dir", metavar="DIR", help="the fairseq plugin (--user-dir) a checkpoint's model needs")
    p.add_argument("--layer", type=int, default=None,
                   help="1-based transformer layer, or CPC LSTM layer (default: the registry's layer; for a path, "
                        "the top transformer layer, CPC's layer 2)")


def add_run_arguments(p) -> None:
    p.add_argument("--deduplicate", action="store_true",
                   help="collapse repeated units, with durations (in frames of the model's frame_hop)")
    p.add_argument("--split", default="all", help="name of this split in dump/JSONL file names")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--dtype", choices=precision.DTYPES, default="fp32", help="model compute precision")
    p.add_argument("--max-chunk", type=int, default=None, help="samples per chunk for long files (default 1600000; CPC: 64000)")
    p.add_argument("--max-batch-seconds", "--batch-seconds", dest="batch_seconds", type=float, default=None,
                   help="padded audio seconds per forward pass, which bounds the device memory a batch takes; a batch "
                        f"that still does not fit is retried file by file (default: {precision.batch_help()})")
    p.add_argument("--shard-index", type=int, default=None)
    p.add_argument("--num-shards", type=int, default=None)
    p.add_argument("--workers", type=int, default=None,
                   help="processes decoding, resampling and computing F0 ahead of the model (default on CUDA, or with "
                        "--f0: the task's CPUs, SLURM_CPUS_PER_TASK else the CPU affinity; otherwise, and below 60 s "
                        "of audio: 0, one thread, since the model needs the cores). Outputs do not depend on it")
    p.add_argument("--no-progress", dest="progress", action="store_false")
