"""Extract HuBERT / wav2vec 2.0 dense features, and optionally k-means units, from many audio files.

INPUT is a directory (searched recursively), a glob, a fairseq tsv manifest (root line, then
`relpath<TAB>nsamples`) or JSONL (`{"path": ...}` per line; other fields are carried into the
units records). Files are batched by length with padding-exact results, sharded for SLURM arrays
(--shard-index/--num-shards default to SLURM_ARRAY_TASK_ID/_COUNT), and resumable: a rerun skips
files whose outputs exist. Every write is atomic.

Outputs under --output:
  features/<relpath>.npy                 --features npy (default): one [frames, dim] array per file
  {split}_{rank}_{nshard}.npy + .len     --features dump: fairseq's dump format (learn_kmeans.py reads it)
  {split}_{rank}_{nshard}.units.jsonl    --units KMEANS: {"path", "units", ["durations"]} per file
  {split}_{rank}_{nshard}.errors.jsonl   files that failed, with the reason

Exit status: 0 all files done; 2 some files failed (listed in the errors JSONL, the others are
complete); 1 the job could not run (bad arguments, model unavailable).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

NAME = "features"
HELP = "HuBERT features and units for many files (batched, exact, resumable, shardable)"
log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    add_input_arguments(p)
    p.add_argument("--features", choices=["npy", "dump", "none"], default="npy", help="features output form")
    p.add_argument("--units", metavar="KMEANS", help="k-means registry name or file: also write units")
    p.add_argument("--save-dtype", choices=["float32", "float16"], default="float32")
    add_run_arguments(p)


def parse(argv: list[str]):
    """`features` arguments from a command line, defaults included (for commands that run it)."""
    import argparse

    parser = argparse.ArgumentParser(prog="textless-stack features")
    add_arguments(parser)
    return parser.parse_args(argv)


def add_input_arguments(p) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="directory, glob, .tsv manifest or .jsonl")
    p.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    p.add_argument("--model", default=None,
                   help="registry name or checkpoint path (default: the k-means model's, else hubert-base-ls960)")
    p.add_argument("--user-dir", metavar="DIR", help="the fairseq plugin (--user-dir) a checkpoint's model needs")
    p.add_argument("--layer", type=int, default=None,
                   help="1-based transformer layer (default: the registry's layer; the top layer for a path)")


def add_run_arguments(p) -> None:
    p.add_argument("--deduplicate", action="store_true", help="collapse repeated units, with durations")
    p.add_argument("--split", default="all", help="name of this split in dump/JSONL file names")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="model compute precision")
    p.add_argument("--max-chunk", type=int, default=None, help="samples per chunk for long files (default 1600000)")
    p.add_argument("--batch-seconds", type=float, default=None,
                   help="padded audio seconds per forward pass (default: cuda 400; cpu bf16 12; "
                        "cpu fp32/fp16 0 = one file per pass)")
    p.add_argument("--shard-index", type=int, default=None)
    p.add_argument("--num-shards", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")


def _shard_from_env(args) -> tuple[int, int]:
    index, count = args.shard_index, args.num_shards
    if index is None and os.environ.get("SLURM_ARRAY_TASK_ID"):
        index = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    if count is None and os.environ.get("SLURM_ARRAY_TASK_COUNT"):
        count = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    return index or 0, count or 1


def _device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("no CUDA device visible: running on CPU")
        return torch.device("cpu")
    return torch.device(name)


@dataclass
class Prepared:
    """What `features` and `resynth` share: the items of this shard, the encoder, the quantizer."""
    items: list
    index: int
    count: int
    device: object
    encoder: object
    quantizer: object | None
    identity: dict
    batch_seconds: float


def prepare(args, units: str | None) -> Prepared:
    from .. import inputs, outputs, pipeline, registry, store
    from ..encoder import MAX_CHUNK, DenseEncoder
    from ..loader import load_model, sha256_file

    outputs.check_writable(args.output)  # before minutes of model loading, not after
    items = [item for spec in args.inputs for item in inputs.collect(spec)]
    inputs.check_unique(items)
    index, count = _shard_from_env(args)
    items = inputs.shard(items, index, count)
    log.info("shard %d of %d: %d files", index, count, len(items))

    kmeans_entry = registry.MODELS.get(units) if units else None
    model_name = args.model or (kmeans_entry.dense if kmeans_entry else "hubert-base-ls960")
    dense = registry.MODELS.get(model_name)
    layer = args.layer if args.layer is not None else (dense.layer if dense else None)
    if layer is None:
        log.info("no --layer given for %s: using the top layer", model_name)

    device = _device(args.device)
    loaded = load_model(store.resolve(model_name), user_dir=args.user_dir)
    layers = len(loaded.model.encoder.layers)
    if layer is not None and not 1 <= layer <= layers:
        # fairseq would quietly return the top layer for any other number
        raise inputs.InputError(f"--layer {layer}: {model_name} has transformer layers 1..{layers}")
    encoder = DenseEncoder(loaded.model, layer, bool(loaded.cfg.task.get("normalize", False)), device,
                           args.dtype, args.max_chunk or MAX_CHUNK)
    quantizer = None
    if units:
        from ..kmeans import Quantizer, read_centroids

        quantizer = Quantizer(read_centroids(store.resolve(units)), device)
        dim = loaded.cfg.model.get("encoder_embed_dim")
        if dim is not None and quantizer.dim != dim:
            raise inputs.InputError(f"k-means {units} has {quantizer.dim}-dimensional centroids, but "
                                    f"{model_name} gives {dim}-dimensional features: they do not belong together")
    identity = {
        "model_sha256": sha256_file(loaded.path), "layer": layer, "dtype": args.dtype,
        "max_chunk": encoder.max_chunk, "units_sha256": sha256_file(store.resolve(units)) if units else None,
        "deduplicate": args.deduplicate, "split": args.split, "num_shards": count,
    }
    batch_seconds = args.batch_seconds if args.batch_seconds is not None else \
        pipeline.default_batch_seconds(device.type, args.dtype)
    log.info("model %s, layer %s, %s %s, batch %.0f s", model_name, layer or "top", device, args.dtype, batch_seconds)
    return Prepared(items, index, count, device, encoder, quantizer, identity, batch_seconds)


def claim(layout, identity: dict) -> None:
    from .. import inputs

    try:
        layout.claim(identity)
    except ValueError as e:
        raise inputs.InputError(str(e)) from None


def run(args) -> int:
    from .. import outputs, pipeline

    prep = prepare(args, args.units)
    layout = outputs.Layout(args.output, args.features, prep.quantizer is not None, args.split, prep.index, prep.count)
    claim(layout, {**prep.identity, "features": args.features, "save_dtype": args.save_dtype})
    job = pipeline.Job(
        items=prep.items, layout=layout, encoder=prep.encoder, quantizer=prep.quantizer,
        deduplicate=args.deduplicate, save_dtype=args.save_dtype, batch_seconds=prep.batch_seconds,
        progress=not args.no_progress,
    )
    summary = pipeline.run(job)
    print(summary.line())
    return 2 if summary.failed else 0
