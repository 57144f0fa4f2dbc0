"""Extract dense features (HuBERT, mHuBERT, wav2vec 2.0, CPC), and optionally k-means units, from many audio files.

INPUT is a directory (searched recursively), a glob, a fairseq tsv manifest (root line, then
`relpath<TAB>nsamples`) or JSONL (`{"path": ...}` per line; other fields are carried into the
units records). Files are batched by length with padding-exact results, sharded for SLURM arrays
(--shard-index/--num-shards default to SLURM_ARRAY_TASK_ID/_COUNT), and resumable: a rerun skips
files whose outputs exist. Every write is atomic.

Outputs under --output:
  features/<relpath>.npy                 --features npy (default): one [frames, dim] array per file
  {split}_{rank}_{nshard}.npy + .len     --features dump: fairseq's dump format (learn_kmeans.py reads it)
  {split}_{rank}_{nshard}.units.jsonl    --units KMEANS: {"path", "units", ["durations"], ["f0"]} per file
  {split}_{rank}_{nshard}.units/.durations/.f0s   --format textlesslib: its transcription files (streams.py)
  {split}_{rank}_{nshard}.errors.jsonl   files that failed, with the reason
  .parts/job.json                        the job record; its frame_hop is the samples per frame at 16 kHz

A frame (one row of features, one unit, one step of a duration) is 20 ms for HuBERT and mHuBERT,
40 ms for mhubert-base-25hz (TWIST / SpiritLM units), 10 ms for CPC.

Exit status: 0 all files done; 2 some files failed (listed in the errors JSONL, the others are
complete); 1 the job could not run (bad arguments, model unavailable, output directory full or
unwritable, its shard held by another process); 143 terminated by SIGTERM (finished files are kept).
"""

from __future__ import annotations

from .options import add_input_arguments, add_run_arguments

NAME = "features"
HELP = "dense features and units for many files (batched, exact, resumable, shardable)"


def add_arguments(p) -> None:
    add_input_arguments(p)
    p.add_argument("--features", choices=["npy", "dump", "none"], default="npy", help="features output form")
    p.add_argument("--f0", action="store_true",
                   help="add each unit's F0 (Hz, mean of the voiced 5 ms YAAPT values under it, 0 if none; "
                        "textlesslib's SpeechEncoder stream) and durations to the units records; needs --units")
    p.add_argument("--format", choices=["jsonl", "textlesslib"], default="jsonl",
                   help="textlesslib: also write {split}_{rank}_{nshard}.units/.durations/.f0s as textlesslib's "
                        "distributed transcribe does (one line per file, integers)")
    p.add_argument("--separator", default=" ", help="--format textlesslib: between values (default: a space)")
    p.add_argument("--preserve-name", action="store_true",
                   help="--format textlesslib: start each line with the file's name and a tab")
    p.add_argument("--units", metavar="KMEANS", help="k-means registry name or file: also write units")
    p.add_argument("--save-dtype", choices=["float32", "float16"], default="float32")
    add_run_arguments(p)


def run(args) -> int:
    from ..jobs import FeaturesSpec, features

    summary = features(FeaturesSpec.from_namespace(args))
    print(summary.line())
    return 2 if summary.failed else 0
