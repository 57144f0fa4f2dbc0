"""The `features` job: items -> audio -> batches -> model -> (quantizer) -> (vocoder) -> parts -> assembled outputs.

`resynth` is the same job with a vocoder at the end (units -> waveform per file).

One direction only. Decoding (resampling, F0) runs AHEAD batches ahead in worker processes
(decoding.py) while the model works; a writer thread writes the finished files behind it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import audio, decoding, f0, inputs, outputs
from .audio import AudioError
from .encoder import DenseEncoder
from .errors import Terminated
from .kmeans import deduplicate

log = logging.getLogger(__name__)

# Decoded ahead of the model: two batches, or a minute of audio per worker if that is more (workers need
# a deep queue to stay busy). That bounds the memory waiting: 64 kB per audio second (decoding.py).
AHEAD_BATCHES, AHEAD_SECONDS_PER_WORKER = 2, 60.0

@dataclass
class Job:
    items: list[inputs.Item]
    layout: outputs.Layout
    encoder: DenseEncoder
    quantizer: object | None = None
    deduplicate: bool = False
    save_dtype: str = "float32"
    batch_seconds: float = 0.0
    progress: bool = True
    # resynth: (key, units) -> waveform at sample_rate; raising fails that one file
    synthesize: Callable | None = None
    sample_rate: int = 0
    label: str = "features"
    f0: bool = False    # per-unit F0 (f0.py), computed while decoding, with durations in every record
    workers: int | None = None  # decoding processes; None: the task's CPUs (one thread for small shards)


@dataclass
class Summary:
    files: int = 0
    done_before: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)
    label: str = "features"
    resampled: Counter = field(default_factory=Counter)  # the files' own rates -> how many
    downmixed: int = 0

    def line(self) -> str:
        rate = self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0
        return (f"{self.label}: {self.files} files ({self.files - self.done_before - self.failed} extracted, "
                f"{self.done_before} already done, {self.failed} failed), "
                f"{self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s "
                f"({rate:.1f} audio-s/s){self.conversions()}")

    def conversions(self) -> str:
        """What was done to the audio on the way in: never silently."""
        parts = []
        if self.resampled:
            rates = ", ".join(f"{n} from {r} Hz" for r, n in sorted(self.resampled.items()))
            parts.append(f"{sum(self.resampled.values())} resampled to {audio.SAMPLE_RATE} Hz ({rates})")
        if self.downmixed:
            parts.append(f"{self.downmixed} downmixed to mono")
        return f"; {'; '.join(parts)}" if parts else ""


@dataclass
class _Planned:
    item: inputs.Item
    samples: int


def run(job: Job) -> Summary:
    """Process every item not done yet, then assemble the shard (the caller holds its outputs.shard_lock).
    On SIGTERM (Terminated) it stops after logging what is kept: finished files stay, partial ones never exist."""
    summary = Summary(files=len(job.items), label=job.label)
    try:
        _run(job, summary)
    except Terminated:
        done = sum(job.layout.done(it.key) for it in job.items)
        log.error("terminated by SIGTERM: %d of %d files finished and kept (%d failed); rerun the same "
                  "command to finish", done, len(job.items), summary.failed)
        raise
    return summary


def _run(job: Job, summary: Summary) -> None:
    started = time.perf_counter()
    for item in job.items:
        job.layout.clean_stale(item.key)
    todo = [it for it in job.items if not job.layout.done(it.key)]
    summary.done_before = len(job.items) - len(todo)
    if summary.done_before:
        log.info("%d of %d files already done (outputs exist): skipped", summary.done_before, len(job.items))
    planned = []
    for item in todo:
        try:
            planned.append(_Planned(item, _samples_at_16k(item)))
        except AudioError as e:
            _fail(job, summary, item, str(e))
    batches = _plan(planned, job.batch_seconds, job.encoder.max_chunk)
    total = sum(p.samples for p in planned) / audio.SAMPLE_RATE
    workers = job.workers
    if workers is None:  # on CPU the model needs every core, and decoding alone costs little: one thread,
        # unless F0 (YAAPT, slower than the model) is asked for
        on_gpu = getattr(getattr(job.encoder, "device", None), "type", "cpu") == "cuda"
        workers = decoding.default_workers() if (on_gpu or job.f0) and total >= decoding.POOL_MIN_SECONDS else 0
    log.info("decoding%s in %s", " and F0" if job.f0 else "",
             f"{workers} worker processes" if workers else "one thread")
    decoder, writer = decoding.Decoder(workers, job.f0), _Writer()
    try:
        with _progress(total, job.progress) as bar:
            ahead = max(AHEAD_BATCHES * job.batch_seconds, AHEAD_SECONDS_PER_WORKER * workers) * audio.SAMPLE_RATE
            submitted, in_flight = 0, 0
            for i, batch in enumerate(batches):
                while submitted < len(batches) and (submitted - i < AHEAD_BATCHES or in_flight < ahead):
                    decoder.submit([str(p.item.path) for p in batches[submitted]])
                    in_flight += sum(p.samples for p in batches[submitted])
                    submitted += 1
                results = decoder.next()
                in_flight -= sum(p.samples for p in batch)
                ok, tracks = [], {}
                for p, r in zip(batch, results):
                    if r.error is not None:
                        _fail(job, summary, p.item, r.error)
                        continue
                    summary.resampled[r.rate] += r.rate != audio.SAMPLE_RATE
                    summary.downmixed += r.channels > 1
                    ok.append((p.item, torch.from_numpy(r.waveform())))
                    if r.f0 is not None:
                        tracks[p.item.key] = torch.from_numpy(r.f0)
                summary.resampled = +summary.resampled  # drop the zero counts
                if ok:
                    _encode_and_write(job, summary, ok, tracks, writer)
                bar.update(sum(p.samples for p in batch) / audio.SAMPLE_RATE)
            writer.drain()
    finally:  # on SIGTERM, do not wait for the next batches' decoding
        decoder.close()
        writer.close()
    job.layout.assemble([it.key for it in job.items])
    summary.wall_seconds = time.perf_counter() - started


def _samples_at_16k(item: inputs.Item) -> int:
    if item.samples is not None:
        return item.samples
    frames, rate = audio.info(item.path)
    if frames <= 0:
        raise AudioError("empty: no audio samples")
    return math.ceil(frames * audio.SAMPLE_RATE / rate)


def _plan(planned: list[_Planned], batch_seconds: float, max_chunk: int) -> list[list[_Planned]]:
    """Files sorted by length, grouped while rows x longest row (the padded batch) fits the budget."""
    budget = batch_seconds * audio.SAMPLE_RATE
    batches, current, rows, longest = [], [], 0, 0
    for p in sorted(planned, key=lambda p: p.samples):
        p_rows, p_longest = max(1, math.ceil(p.samples / max_chunk)), min(p.samples, max_chunk)
        if current and (rows + p_rows) * max(longest, p_longest) > budget:
            batches.append(current)
            current, rows, longest = [], 0, 0
        current.append(p)
        rows, longest = rows + p_rows, max(longest, p_longest)
    if current:
        batches.append(current)
    return batches


def _encode_and_write(job: Job, summary: Summary, batch: list[tuple[inputs.Item, torch.Tensor]],
                      tracks: dict[str, torch.Tensor], writer: "_Writer") -> None:
    enc = job.encoder
    usable, rows, owners = [], [], []
    for item, wav in batch:
        if enc.geometry.frames(wav.numel()) == 0:
            _fail(job, summary, item, f"too short: {wav.numel()} samples, shorter than the model's receptive "
                                      f"field ({enc.geometry.receptive_field} samples at 16 kHz)")
            continue
        chunks = enc.chunks(wav)
        usable.append((item, wav))
        rows.extend(chunks)
        owners.extend([len(usable) - 1] * len(chunks))
    if not usable:
        return
    try:
        if job.quantizer is not None:
            feats, units = enc.encode_units(rows, job.quantizer)
        else:
            feats, units = enc.encode(rows), None
    except RuntimeError as e:  # e.g. out of memory: retry file by file, so one file cannot sink a batch
        if len(usable) == 1:
            _fail(job, summary, usable[0][0], f"model failed: {str(e).splitlines()[0]}")
            return
        log.warning("batch of %d files failed (%s): retrying one by one", len(usable), str(e).splitlines()[0])
        for one in usable:
            _encode_and_write(job, summary, [one], tracks, writer)
        return
    per_file, per_file_units = [[] for _ in usable], [[] for _ in usable]
    for i, (owner, f) in enumerate(zip(owners, feats)):
        per_file[owner].append(f)
        if units is not None:
            per_file_units[owner].append(units[i])
    for (item, wav), parts, unit_parts in zip(usable, per_file, per_file_units):
        # one copy, in the saved dtype, and none when no features are written (units only)
        features = None if job.layout.features == "none" else \
            np.concatenate([p.numpy() for p in parts], dtype=job.save_dtype)
        file_units = np.concatenate(unit_parts) if units is not None else None
        try:
            writer.submit(_write(job, item, features, file_units, tracks.get(item.key)))
        except _FileFailed as e:
            _fail(job, summary, item, str(e))
            continue
        summary.audio_seconds += wav.numel() / audio.SAMPLE_RATE


_COMPUTED = ("units", "durations", "f0")


class _FileFailed(Exception):
    pass


def _write(job: Job, item: inputs.Item, features: np.ndarray | None, units: np.ndarray | None,
           track: torch.Tensor | None = None) -> Callable:
    """Compute what this file's outputs hold (F0, speech; its units come assigned with the batch) here; return
    the writing of them, which the writer thread does. A file that fails here has nothing written."""
    layout, key, saves = job.layout, item.key, []
    if units is not None:
        if job.synthesize is not None:
            try:
                waveform = job.synthesize(key, units)
            except Exception as e:  # one file's units the vocoder cannot render (e.g. too short)
                raise _FileFailed(f"vocoder failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            saves.append(lambda: outputs.save_wav(layout.wav_part(key), waveform, job.sample_rate))
        if layout.units:
            # fields a manifest carries along, except the ones computed here
            record = {"path": key, **{k: v for k, v in item.extra.items() if k not in _COMPUTED}}
            if job.deduplicate:
                record["units"], record["durations"] = deduplicate(units)
            else:
                record["units"] = units.tolist()
            if track is not None:
                if not job.deduplicate:
                    record["durations"] = [1] * len(record["units"])
                try:
                    record["f0"] = f0.per_unit(track, record["durations"], job.encoder.geometry.hop)
                except f0.F0Error as e:
                    raise _FileFailed(str(e)) from None
            saves.append(lambda: outputs.save_json(layout.units_part(key), record))
    if features is not None:
        saves.append(lambda: outputs.save_npy(layout.features_part(key), features))
    saves.append(lambda: layout.error_part(key).unlink(missing_ok=True))

    def write() -> None:
        for save in saves:
            save()
    return write


class _Writer:
    """One thread that writes finished files while the model works on the next batch. At most DEPTH files
    wait; a write that fails (a full disk) is raised here, in the job's thread, at the next submit or at the
    end. Every write is atomic (outputs.atomic), so a kill leaves whole files or none."""

    DEPTH = 16

    def __init__(self):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.pool, self.pending = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer"), deque()

    def submit(self, write: Callable) -> None:
        while self.pending and (self.pending[0].done() or len(self.pending) >= self.DEPTH):
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(write))

    def drain(self) -> None:
        while self.pending:
            self.pending.popleft().result()

    def close(self) -> None:
        """Let the writes already handed over finish (a few files; on SIGTERM too), start no more."""
        self.pool.shutdown(wait=True, cancel_futures=False)


def _fail(job: Job, summary: Summary, item: inputs.Item, reason: str) -> None:
    if item.root is not None and not item.root.is_dir():
        # not this file's fault: every file after it would fail the same way (an unmounted share)
        raise inputs.InputError(f"{item.root}: the input directory disappeared during the run; finished files "
                                "are kept: rerun the same command once it is back")
    summary.failed += 1
    summary.failures.append((item.key, reason))
    log.error("%s: %s", item.key, reason)
    outputs.save_json(job.layout.error_part(item.key), {"path": item.key, "error": reason})


class _progress:
    """tqdm in audio-seconds; quiet refreshes when stderr is not a terminal (SLURM logs)."""

    def __init__(self, total: float, enabled: bool):
        import sys

        from tqdm import tqdm

        interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="audio-s", unit_scale=False, disable=not enabled,
                        mininterval=0.5 if interactive else 30, dynamic_ncols=interactive,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} audio-s [{elapsed}<{remaining}, {rate_fmt}]")

    def __enter__(self):
        return self.bar

    def __exit__(self, *exc):
        self.bar.close()
