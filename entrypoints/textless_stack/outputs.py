"""Everything written to disk: atomically (temp file + rename), so a killed run leaves no partial output.

Per finished file, one "part" per product (features .npy, units .json, error .json). A rerun skips
files whose parts exist. At the end of a shard, parts are assembled (in input order) into
fairseq's dump format ({split}_{rank}_{nshard}.npy + .len) and JSONL files, and last a
{stem}.done.json marker says the shard is complete (what `merge` waits for).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import io
import json
import logging
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

PARTS = ".parts"


class OutputError(UserError):
    """The output directory cannot take the results (full, unwritable, or another process's)."""


@functools.cache
def _file_mode() -> int:
    # mkstemp creates 0600 whatever the umask; outputs must be what any tool creates (0644 under 022).
    # The umask can only be read by setting it: once, before any worker thread writes.
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def disk_errors(where: Path):
    """A full disk or quota, a read-only or unwritable directory: one error naming the directory."""
    try:
        yield
    except OSError as e:
        full = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
        unwritable = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                      errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file",
                      errno.EEXIST: "a file is in the way"}
        if e.errno in full:
            raise OutputError(f"{where}: {full[e.errno]}: finished files are kept; free space, then rerun the "
                              "same command to finish") from None
        if e.errno in unwritable:
            raise OutputError(f"{where}: {unwritable[e.errno]}: cannot write there; make it writable or choose "
                              "another --output (finished files are kept)") from None
        raise


@contextmanager
def atomic(path: Path, mode: str = "wb"):
    """Write to a temp file beside `path`, fsync, then rename over it."""
    with disk_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            os.fchmod(fd, _file_mode())
            with os.fdopen(fd, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise


def check_writable(out: Path) -> None:
    """Before any model is loaded: the output directory exists (or can be made) and takes a file."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: not a directory: choose another --output")
    with disk_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)


@contextmanager
def shard_lock(out: Path, stem: str):
    """One process per output shard: a second one (a resubmitted task racing the original) is refused,
    naming the holder. flock is released by the kernel when its holder dies, so a killed run leaves no
    lock that blocks; the file keeps only the last holder's name."""
    path = out / PARTS / f"{stem}.lock"
    with disk_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _file_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(f"{out}: shard {stem} is being written by {holder}: wait for it to finish or "
                              "stop it; two processes must not write one shard") from None
        except OSError as e:  # e.g. Lustre mounted without -o flock
            if e.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                raise
            log.warning("%s: this filesystem has no file locks (%s): shard %s runs unlocked; do not start it "
                        "twice", out, e.strerror, stem)
        job = os.environ.get("SLURM_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        holder = (f"pid {os.getpid()} on {socket.gethostname()}"
                  + (f" (SLURM job {job}{'_' + task if task else ''})" if job else "")
                  + f" since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode() + b"\n", 0)
        yield
    finally:
        os.close(fd)


def save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()  # numpy's own file writes lose the errno of a full disk
    np.save(buffer, array)
    with atomic(path) as f:
        f.write(buffer.getbuffer())


def save_wav(path: Path, waveform, sample_rate: int) -> None:
    import soundfile as sf

    buffer = io.BytesIO()  # rendered in memory: soundfile's file-object writes hide a full disk
    sf.write(buffer, waveform, sample_rate, format="WAV", subtype="PCM_16")
    with atomic(path) as f:
        f.write(buffer.getbuffer())


def save_json(path: Path, record: dict) -> None:
    with atomic(path, "w") as f:
        json.dump(record, f)


def stem(split: str, rank: int, nshard: int) -> str:
    """fairseq's dump naming: every output of one shard is {split}_{rank}_{nshard}.*"""
    return f"{split}_{rank}_{nshard}"


@dataclass(frozen=True)
class JobRecord:
    """A job's identity, OUTPUT/.parts/job.json: what its outputs are and how they were computed.
    Written by `features` and `resynth` alike, read by `merge`; resuming is only safe into outputs
    of the same record."""
    command: str                # features | resynth
    model_sha256: str
    layer: int | None
    dtype: str
    max_chunk: int
    units_sha256: str | None    # the k-means, when units are computed
    deduplicate: bool
    split: str
    num_shards: int
    features: str               # npy | dump | none
    save_dtype: str
    units: bool                 # a units JSONL is written
    wav: bool                   # a wav per file is written (resynth)
    vocoder: dict | None = None  # resynth: file digests and synthesis settings
    frame_hop: int | None = None  # samples at 16 kHz per feature frame and unit (durations count frames)
    f0: bool = False             # units records carry per-unit F0 (Hz, 0 where unvoiced)
    streams: dict | None = None  # textlesslib's transcription files too: {"separator", "preserve_name"} (streams.py)
    resampler: str | None = None  # what brought other rates to 16 kHz (audio.resampler()); it changes features

    @classmethod
    def read(cls, out: Path) -> "JobRecord | None":
        path = out / PARTS / "job.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        if "command" not in data and "features" in data:  # textless-stack <= a096ece's `features` record
            data = {**data, "command": "features", "units": data.get("units_sha256") is not None, "wav": False}
        try:
            return cls(**data)
        except TypeError:
            raise OutputError(f"{out}: {path} is not a job record this textless-stack reads: use a new --output "
                              "directory, or delete this one to start over") from None

    def layout(self, out: Path, rank: int, nshard: int | None = None) -> "Layout":
        """Shard `rank` of this job (nshard=1: the merged outputs)."""
        return Layout(out, self.features, self.units, self.split, rank, nshard or self.num_shards, wav=self.wav,
                      streams=self.streams)


def _differences(old: dict, new: dict) -> list[str]:
    """The keys whose values differ; inside a nested record (the vocoder's), as `vocoder.speaker`."""
    found = []
    for k in sorted(old.keys() | new.keys()):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            found += [f"{k}.{sub}" for sub in _differences(a, b)]
        elif a != b:
            found.append(k)
    return found


class Layout:
    """Where each product of one run (one shard) goes under the output directory."""

    def __init__(self, out: Path, features: str, units: bool, split: str, rank: int, nshard: int, wav: bool = False,
                 streams: dict | None = None):
        self.out, self.features, self.units, self.wav, self.streams = out, features, units, wav, streams
        self.stem = stem(split, rank, nshard)

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

    def claim(self, record: JobRecord) -> None:
        """Tie the output directory to one job (model, layer, precision, ...): resuming is only safe
        into outputs the same job wrote. A different job is refused instead of mixing results."""
        previous = JobRecord.read(self.out)
        if previous is None:
            save_json(self.out / PARTS / "job.json", asdict(record))
            return
        # Not part of the identity: the transcription files are derived from the units JSONL at assembly, and
        # a record from before frame_hop gets it from the model's digest, which it already fixes.
        comparable = replace(previous, streams=record.streams, frame_hop=previous.frame_hop or record.frame_hop,
                             resampler=previous.resampler or record.resampler)
        if previous.resampler is None and record.resampler:
            log.warning("%s: this job began before the resampler was recorded (torchaudio's sinc then); files "
                        "resampled from now on use %s", self.out, record.resampler)
        if comparable != record:
            changed = _differences(asdict(comparable), asdict(record))
            raise OutputError(f"{self.out} holds results of a different job ({', '.join(changed)} differ): "
                              "use a new --output directory, or delete this one to start over")
        if previous != record:  # say it from now on
            save_json(self.out / PARTS / "job.json", asdict(record))

    def write_streams(self) -> list[Path]:
        if not self.streams:
            return []
        from . import streams

        return streams.write(self.units_jsonl, **self.streams)

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
            self.write_streams()
        errors = [self.error_part(k) for k in keys if not self.done(k) and self.error_part(k).exists()]
        if errors or self.errors_jsonl.exists():
            concat_lines(errors, self.errors_jsonl)
        save_json(self.done_marker, {"files": len(keys), "done": len(ok), "failed": len(errors)})


def concat_npy(sources: list[Path], dest: Path) -> list[int]:
    """Stack [frames, dim] arrays into one .npy, their bytes copied file to file by the kernel (dumps outgrow
    memory, and a memmap copy costs a page fault per 4 kB on both sides). Returns each source's rows."""
    loaded = [np.load(s, mmap_mode="r") for s in sources]
    arrays = [a for a in loaded if a.shape[0]]
    dim = arrays[0].shape[1] if arrays else 0
    dtype = arrays[0].dtype if arrays else np.float32
    tmp = dest.with_name(f".{dest.name}.partial.tmp.npy")
    try:
        with disk_errors(dest.parent):
            dest.parent.mkdir(parents=True, exist_ok=True)
            _write_stacked(tmp, arrays, dtype, dim)
            os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return [a.shape[0] for a in loaded]


def _write_stacked(tmp: Path, arrays: list, dtype, dim: int) -> None:
    header = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(sum(a.shape[0] for a in arrays), dim))
    size, offset = os.path.getsize(tmp), header.offset
    del header
    with open(tmp, "r+b") as out:
        os.posix_fallocate(out.fileno(), 0, size)  # a full disk fails here, before any copying
        for a in arrays:
            if a.dtype != dtype or a.shape[1:] != (dim,) or not a.flags.c_contiguous:
                raise ValueError(f"{a.filename}: {a.dtype} {a.shape} does not stack with {dtype} [*, {dim}]")
            with open(a.filename, "rb") as source:
                _copy_range(source.fileno(), a.offset, out.fileno(), offset, a.nbytes)
            offset += a.nbytes
        os.fsync(out.fileno())


def _copy_range(src: int, src_offset: int, dst: int, dst_offset: int, count: int) -> None:
    kernel = True
    while count:
        n = 0
        if kernel:
            try:
                n = os.copy_file_range(src, dst, count, src_offset, dst_offset)
            except OSError as e:  # across filesystems on older kernels, some FUSE mounts, seccomp (EPERM)
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
            kernel = n > 0  # 0: refused silently by some filesystems; reads tell end of file from that
        if not kernel:
            n = os.pwrite(dst, os.pread(src, min(count, 1 << 24), src_offset), dst_offset)
            if n == 0:
                raise OSError(errno.EIO, f"a part ended {count} bytes early")
        src_offset, dst_offset, count = src_offset + n, dst_offset + n, count - n


def concat_lines(sources: list[Path], dest: Path) -> None:
    """One line per source file, in order (JSON records and JSONL shards alike)."""
    with atomic(dest, "w") as f:
        for source in sources:
            text = source.read_text().strip()
            if text:
                f.write(text + "\n")
