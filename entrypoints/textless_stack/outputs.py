"""Everything written to disk: atomically (temp file + rename), so a killed run leaves no partial output.

Per finished file, one "part" per product (features .npy, units .json, error .json). A rerun skips
files whose parts exist. At the end of a shard, parts are assembled (in input order) into
fairseq's dump format ({split}_{rank}_{nshard}.npy + .len) and JSONL files, and last a
{stem}.done.json marker says the shard is complete (what `merge` waits for).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PARTS = ".parts"


@contextmanager
def atomic(path: Path, mode: str = "wb"):
    """Write to a temp file beside `path`, fsync, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic(path) as f:
        np.save(f, array)


def save_wav(path: Path, waveform, sample_rate: int) -> None:
    import soundfile as sf

    with atomic(path) as f:
        sf.write(f, waveform, sample_rate, format="WAV", subtype="PCM_16")


def save_json(path: Path, record: dict) -> None:
    with atomic(path, "w") as f:
        json.dump(record, f)


class Layout:
    """Where each product of one run (one shard) goes under the output directory."""

    def __init__(self, out: Path, features: str, units: bool, split: str, rank: int, nshard: int, wav: bool = False):
        self.out, self.features, self.units, self.wav = out, features, units, wav
        self.stem = f"{split}_{rank}_{nshard}"

    def _key_path(self, root: Path, key: str, suffix: str) -> Path:
        return root / (str(Path(key).with_suffix("")) + suffix)

    def features_part(self, key: str) -> Path:
        root = self.out / "features" if self.features == "npy" else self.out / PARTS / "features"
        return self._key_path(root, key, ".npy")

    def units_part(self, key: str) -> Path:
        return self._key_path(self.out / PARTS / "units", key, ".json")

    def wav_part(self, key: str) -> Path:
        return self._key_path(self.out / "wav", key, ".wav")

    def error_part(self, key: str) -> Path:
        return self._key_path(self.out / PARTS / "errors", key, ".json")

    def claim(self, job: dict) -> None:
        """Tie the output directory to one job (model, layer, precision, ...): resuming is only safe
        into outputs the same job wrote. A different job is refused instead of mixing results."""
        path = self.out / PARTS / "job.json"
        if path.exists():
            previous = json.loads(path.read_text())
            if previous != job:
                changed = sorted(k for k in set(job) | set(previous) if job.get(k) != previous.get(k))
                raise ValueError(f"{self.out} holds results of a different job ({', '.join(changed)} differ): "
                                 "use a new --output directory, or delete this one to start over")
            return
        save_json(path, job)

    def clean_stale(self, key: str) -> None:
        """Remove temp files a killed earlier run left for this key (only this shard's keys: a
        concurrent shard's in-flight temp files are never touched)."""
        for part in (self.features_part(key), self.units_part(key), self.wav_part(key), self.error_part(key)):
            for stale in part.parent.glob(f".{part.name}.*.tmp") if part.parent.is_dir() else ():
                stale.unlink(missing_ok=True)

    def done(self, key: str) -> bool:
        return ((self.features == "none" or self.features_part(key).exists())
                and (not self.units or self.units_part(key).exists())
                and (not self.wav or self.wav_part(key).exists()))

    @property
    def dump(self) -> tuple[Path, Path]:
        return self.out / f"{self.stem}.npy", self.out / f"{self.stem}.len"

    @property
    def units_jsonl(self) -> Path:
        return self.out / f"{self.stem}.units.jsonl"

    @property
    def errors_jsonl(self) -> Path:
        return self.out / f"{self.stem}.errors.jsonl"

    # --- assembly at the end of a shard ---------------------------------------------------

    @property
    def done_marker(self) -> Path:
        return self.out / f"{self.stem}.done.json"

    def assemble(self, keys: list[str]) -> None:
        for stale in self.out.glob(f".{self.stem}.*.tmp*"):
            stale.unlink(missing_ok=True)
        ok = [k for k in keys if self.done(k)]
        if self.features == "dump":
            npy, lens = self.dump
            rows = concat_npy([self.features_part(k) for k in ok], npy)
            with atomic(lens, "w") as f:
                f.write("".join(f"{n}\n" for n in rows))
        if self.units:
            concat_lines([self.units_part(k) for k in ok], self.units_jsonl)
        errors = [self.error_part(k) for k in keys if not self.done(k) and self.error_part(k).exists()]
        if errors or self.errors_jsonl.exists():
            concat_lines(errors, self.errors_jsonl)
        save_json(self.done_marker, {"files": len(keys), "done": len(ok), "failed": len(errors)})


def concat_npy(sources: list[Path], dest: Path) -> list[int]:
    """Stack [frames, dim] arrays into one .npy, streamed through a memmap (dumps outgrow memory).
    Returns each source's number of rows."""
    loaded = [np.load(s, mmap_mode="r") for s in sources]
    arrays = [a for a in loaded if a.shape[0]]
    dim = arrays[0].shape[1] if arrays else 0
    dtype = arrays[0].dtype if arrays else np.float32
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(sum(a.shape[0] for a in arrays), dim))
    offset = 0
    for a in arrays:
        out[offset:offset + a.shape[0]] = a
        offset += a.shape[0]
    out.flush()
    del out
    os.replace(tmp, dest)
    return [a.shape[0] for a in loaded]


def concat_lines(sources: list[Path], dest: Path) -> None:
    """One line per source file, in order (JSON records and JSONL shards alike)."""
    with atomic(dest, "w") as f:
        for source in sources:
            text = source.read_text().strip()
            if text:
                f.write(text + "\n")
