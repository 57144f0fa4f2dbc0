"""Audio decoding, resampling and F0 off the model's path: in worker processes, a bounded window ahead.

Each file is decoded by the same function wherever it runs (`decode_one`: soundfile, soxr, YAAPT; numpy
only, single-threaded), so the outputs do not depend on the number of workers. Results come back in the order the files were planned.
A worker that dies (a decoder crash, the OOM killer, kill -9) fails its file, not the job: the pool is
started again and the files it held are retried, each suspect one alone first.

Memory: the pipeline keeps max(2 batches, 60 s x workers) of audio decoding ahead of the model (float32
at 16 kHz, 64 kB per audio second: 2 x --batch-seconds x 64 kB, or 3.8 MB per worker, whichever is more).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Below this much audio in a shard, worker processes cost more to start than they save.
POOL_MIN_SECONDS = 60.0


def default_workers() -> int:
    """The CPUs this task was given: SLURM's count, else this process's CPU affinity."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class Result:
    """One file: its waveform (float32 at 16 kHz), the file's own rate and channels, its F0 track;
    or why it failed. From a worker process the waveform comes through `spill`, a file in the job's
    temporary directory (tmpfs in the images): a pipe would copy it through many small writes."""
    wav: np.ndarray | None = None
    rate: int = 0
    channels: int = 0
    f0: np.ndarray | None = None
    error: str | None = None
    spill: str | None = None

    def waveform(self) -> np.ndarray:
        if self.wav is None and self.spill is not None:
            self.wav = np.fromfile(self.spill, dtype=np.float32)
            os.unlink(self.spill)
        return self.wav


def decode_one(path: str, with_f0: bool, spill_dir: str | None = None) -> Result:
    """Runs in a worker (or the decoding thread)."""
    from . import audio, f0
    from .audio import AudioError

    try:
        wav, rate, channels = audio.read(path)
        track = f0.track_array(wav) if with_f0 else None
        if spill_dir is None:
            return Result(wav, rate, channels, track)
        fd, spill = tempfile.mkstemp(dir=spill_dir, suffix=".f32")
        with os.fdopen(fd, "wb") as f:
            wav.tofile(f)
        return Result(None, rate, channels, track, spill=spill)
    except (AudioError, f0.F0Error) as e:
        return Result(error=str(e))
    except Exception as e:  # noqa: BLE001 - any decoder failure is this file's, e.g. MemoryError on a huge file
        return Result(error=f"decoding failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def _alive() -> bool:
    return True


# Imported once by the fork server, so each worker starts at once; workers import no torch.
# "__main__" is meant to spare each worker re-running the main script, but Python 3.10's fork server never
# receives its path (a key mismatch in multiprocessing), so every worker re-runs it: the CLI's imports must
# stay free of torch (test_decoding_workers_do_not_load_torch).
_PRELOAD = ["__main__", "textless_stack.decoding", "textless_stack.audio", "numpy", "soundfile", "soxr"]
_PRELOAD_F0 = ["textless_stack.f0", "amfm_decompy.pYAAPT", "librosa.util"]


def decode_many(paths: list[str], with_f0: bool, spill_dir: str | None = None) -> list[Result]:
    """A batch's files in one task: one round trip to the worker per batch, not per file."""
    return [decode_one(p, with_f0, spill_dir) for p in paths]


class Decoder:
    """decoder.submit(paths) per batch, in plan order; decoder.next() returns the oldest batch's results.
    A batch is one task for one worker; the workers decode different batches at once.

    workers == 0 decodes in one thread of this process (nothing to start: small jobs, debugging)."""

    def __init__(self, workers: int, with_f0: bool):
        self.workers, self.with_f0 = workers, with_f0
        self.pool, self.generation, self.spill = None, 0, None
        self.queue: deque[tuple[list[str], Future, int]] = deque()
        self.spill_dir = tempfile.mkdtemp(prefix="textless-decoded.") if workers else None
        self._start()

    def _start(self) -> None:
        self.generation += 1
        if self.workers == 0:
            self.pool, self.spill = ThreadPoolExecutor(max_workers=1), None
        else:
            # forkserver: workers fork from a clean server process, not from this one's torch threads
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD + (_PRELOAD_F0 if self.with_f0 else []))
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context)
            self.spill = self.spill_dir

    def _submit(self, paths: list[str]) -> tuple[list[str], Future, int]:
        try:
            return paths, self.pool.submit(decode_many, paths, self.with_f0, self.spill), self.generation
        except BrokenProcessPool:  # a worker died since the last look: the batches it held are retried in next()
            log.warning("a decoding worker died; the files it held are decoded again")
            self._restart()
            return paths, self.pool.submit(decode_many, paths, self.with_f0, self.spill), self.generation
        except (OSError, NotImplementedError) as e:  # no processes here: no /dev/shm, semaphores, a long TMPDIR
            self._one_thread(f"decoding worker processes cannot start here ({type(e).__name__}: {e})")
            return paths, self.pool.submit(decode_many, paths, self.with_f0, self.spill), self.generation

    def _one_thread(self, why: str) -> None:
        log.warning("%s: decoding in one thread instead", why)
        self.workers = 0
        self._restart()
        self.queue = deque(self._submit(p) for p, _, _ in self.queue)

    def submit(self, paths: list[str]) -> None:
        submitted = self._submit(paths)  # first: a fallback to one thread replaces self.queue
        self.queue.append(submitted)

    def next(self) -> list[Result]:
        paths, future, generation = self.queue.popleft()
        while True:
            try:
                return future.result()
            except BrokenProcessPool:
                if generation != self.generation:  # held by a pool that died already: decode it again
                    paths, future, generation = self._submit(paths)
                    continue
                log.warning("a decoding worker died; the files it held are decoded again, each suspect one alone")
                self._restart()
                return [self._alone(p) for p in paths]

    def _alone(self, path: str) -> Result:
        """Decode one file in the pool by itself. If it kills a worker again, it is the file's fault: it
        fails, and the job goes on."""
        try:
            return self.pool.submit(decode_many, [path], self.with_f0, self.spill).result()[0]
        except BrokenProcessPool:
            self._restart()
            if not self._workers_run():  # not this file: no worker can run here at all
                self._one_thread("decoding worker processes cannot run here (each dies before any work)")
                return self.pool.submit(decode_many, [path], self.with_f0, self.spill).result()[0]
            return Result(error="the decoding process died on this file (a crash in the decoder, or killed)")

    def _workers_run(self) -> bool:
        try:
            return self.pool.submit(_alive).result()
        except BrokenProcessPool:
            return False

    def _restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._start()

    def close(self) -> None:
        """Do not wait for files still decoding (on SIGTERM, or an error): the workers are stopped, since
        exiting would otherwise wait for the batches they hold; remove what they spilled."""
        for process in list((getattr(self.pool, "_processes", None) or {}).values()):
            process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.queue.clear()
        if self.spill_dir:
            shutil.rmtree(self.spill_dir, ignore_errors=True)
