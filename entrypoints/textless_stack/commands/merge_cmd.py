"""Merge the shards of a `features` run (a SLURM array) into single-process outputs.

Reads the job from OUTPUT/.parts/job.json, checks that every shard finished, then writes
{split}_0_1.npy + .len (fairseq dump), {split}_0_1.units.jsonl and {split}_0_1.errors.jsonl in
input order: the files one `features` process would have written. Shard files are kept.

Exit status: 0 merged (or a single shard: nothing to merge); 1 shards unfinished or no job there.
"""

from __future__ import annotations

from pathlib import Path

NAME = "merge"
HELP = "combine the shards of a features run into one split (fairseq dump, units JSONL)"


def add_arguments(p) -> None:
    p.add_argument("output", type=Path, help="the --output directory of the sharded features run")


def run(args) -> int:
    from ..merge import merge

    print(merge(args.output).line())
    return 0
