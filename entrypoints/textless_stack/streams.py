"""textlesslib's transcription files, for its users' downstream scripts: `features --format textlesslib`.

textlesslib's tools/distributed_transcribe (ba33d669) writes one line per file, in manifest order, to
`<out>.units`, `<out>.durations` and `<out>.f0s` (with one worker: several interleave by rank) as integers (`str(int(x))`: F0 truncated to
whole Hz), joined by `--separator`, and with `--preserve_name` prefixed by the file's name without its
directory or extension and a tab. Here they are derived from the units JSONL of a shard (or of the
merged outputs), next to it: `{split}_{rank}_{nshard}.units`, `.durations` (when the records have
durations), `.f0s` (with --f0). A file that failed has no line, as in the JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from .outputs import atomic

STREAMS = (("units", "units"), ("durations", "durations"), ("f0", "f0s"))


def write(units_jsonl: Path, separator: str = " ", preserve_name: bool = False) -> list[Path]:
    records = [json.loads(line) for line in units_jsonl.read_text().splitlines() if line.strip()]
    base = units_jsonl.name[: -len(".units.jsonl")]
    written = []
    for field, suffix in STREAMS:
        if field != "units" and not (records and field in records[0]):
            continue
        path = units_jsonl.with_name(f"{base}.{suffix}")
        with atomic(path, "w") as f:
            for r in records:
                line = separator.join(str(int(x)) for x in r[field])
                name = PurePosixPath(r["path"]).with_suffix("").name
                f.write(f"{name}\t{line}\n" if preserve_name else f"{line}\n")
        written.append(path)
    return written
