"""Combine the shards of one `features` job into the outputs a single process would have written.

Shards are contiguous ranges of the input order, so concatenating ranks 0..n-1 restores it:
fairseq dump shards -> {split}_0_1.npy + .len, units and errors JSONL in manifest order. Nothing is
merged until every shard has its done marker; the shard files are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import provenance
from .errors import UserError
from .outputs import PARTS, JobRecord, concat_lines, concat_npy, save_json


class MergeError(UserError):
    pass


@dataclass
class Merged:
    shards: int
    files: int
    done: int
    failed: int
    outputs: list[Path]

    def line(self) -> str:
        return (f"merge: {self.shards} shards -> {', '.join(p.name for p in self.outputs)}: "
                f"{self.files} files ({self.done} done, {self.failed} failed)")


def job_of(out: Path) -> JobRecord:
    job = JobRecord.read(out)
    if job is None:
        raise MergeError(f"{out} holds no `features` job, nor a `resynth` one ({out / PARTS / 'job.json'} is missing)")
    return job


def merge(out: Path) -> Merged:
    """Per-file products (features/*.npy, wav/*.wav) need no merging: they are already in place."""
    job = job_of(out)
    count = job.num_shards
    shards = [job.layout(out, rank) for rank in range(count)]
    missing = [s.stem for s in shards if not s.done_marker.is_file()]
    if missing:
        raise MergeError(f"{len(missing)} of {count} shards are unfinished ({', '.join(missing)}): rerun or "
                         "resubmit them (finished files are skipped), then merge again")
    markers = [json.loads(s.done_marker.read_text()) for s in shards]
    merged = job.layout(out, 0, nshard=1)
    written = []
    if count > 1:
        if job.features == "dump":
            concat_npy([s.dump[0] for s in shards], merged.dump[0])
            concat_lines([s.dump[1] for s in shards], merged.dump[1])
            written += list(merged.dump)
        if job.units:
            concat_lines([s.units_jsonl for s in shards], merged.units_jsonl)
            written += [merged.units_jsonl, *merged.write_streams()]
        errors = [s.errors_jsonl for s in shards if s.errors_jsonl.exists()]
        if errors:
            concat_lines(errors, merged.errors_jsonl)
            written.append(merged.errors_jsonl)
        total = {k: sum(m[k] for m in markers) for k in ("files", "done", "failed")}
        save_json(merged.done_marker, total)
        written.append(merged.done_marker)
    else:
        total = markers[0]
    if (out / PARTS / "provenance").is_dir():  # shards from before provenance have none
        provenance.assemble(out, job)
        written.append(out / provenance.FILE)
    return Merged(count, total["files"], total["done"], total["failed"], written)
