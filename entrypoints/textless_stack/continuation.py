"""Speech continuation: prompts -> unit LM samples -> (speech), in chunks that shard and resume; the outputs
are listed in commands/continue_cmd.py. Prompts are audio (units by the LM's own dense model and k-means,
deduplicated, as GSLM's examples/gslm/sample.py does) or lines of units (fairseq's `sample.py --prompts`).

Sequence i is sample i % S of prompt i // S (S = samples per prompt). Chunk b holds sequences
[b*B, (b+1)*B) (B = --batch-size), is sampled in one batch and seeded with seed + b. So a chunk's units do
not depend on how the job is sharded or how often it was resumed: a shard runs a contiguous range of chunks,
and a chunk whose part file exists is never sampled again.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import audio, outputs
from .audio import AudioError
from .errors import UserError

log = logging.getLogger(__name__)

PARTS = "continue"  # under OUTPUT/.parts: one units file and one done marker per chunk


@dataclass
class Prompt:
    name: str              # the input's key (audio) or "line N" (unit prompts)
    units: list[int]


@dataclass
class Result:
    prompts: int = 0
    outputs: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    complete: bool = True  # every shard's chunks are done: continuations.jsonl is written

    def line(self) -> str:
        return (f"continue: {self.prompts} prompts -> {self.outputs} continuations"
                f"{f', {len(self.failures)} failed (errors.jsonl)' if self.failures else ''}"
                + ("" if self.complete else "; other shards still to run (the last one writes continuations.jsonl)"))


def unit_prompts(path: Path, known: set[int]) -> list[Prompt]:
    """One prompt per non-empty line: unit numbers separated by spaces, each in the LM's dictionary."""
    prompts = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            units = [int(x) for x in line.split()]
        except ValueError:
            raise UserError(f"{path}:{n}: not a line of unit numbers: {line[:60]!r}") from None
        unknown = [u for u in units if u not in known]
        if unknown:
            raise UserError(f"{path}:{n}: unit {unknown[0]} is not in the LM's dictionary "
                            f"(units {min(known)}..{max(known)})")
        prompts.append(Prompt(f"line {n}", units))
    if not prompts:
        raise UserError(f"{path}: no prompts in it")
    return prompts


def audio_prompt(item, encoder, quantizer, prompt_seconds: float | None) -> list[int]:
    """An audio file's deduplicated units; AudioError when it cannot be read or is too short."""
    import torch

    from .kmeans import deduplicate

    wav = audio.decode(item.path).wav
    if prompt_seconds:
        wav = wav[: int(prompt_seconds * audio.SAMPLE_RATE)]
    if encoder.geometry.frames(wav.numel()) == 0:
        raise AudioError(f"too short: {wav.numel()} samples, shorter than the model's receptive field "
                         f"({encoder.geometry.receptive_field} samples at 16 kHz)")
    return deduplicate(quantizer(torch.cat(encoder.encode(encoder.chunks(wav)))))[0]


def room(prompt: Prompt, limit: int) -> str | None:
    """Why the generator cannot continue this prompt, or None."""
    if len(prompt.units) >= limit:
        return (f"a prompt of {len(prompt.units)} units leaves no room to continue: the output is at most {limit} "
                "units (--max-len-a/-b/--max-len, the LM's positions)")
    return None


@dataclass
class Plan:
    """Which sequences each chunk holds, and which chunks this shard runs."""
    prompts: int
    samples: int
    batch: int
    index: int = 0
    count: int = 1

    @property
    def chunks(self) -> int:
        return math.ceil(self.prompts * self.samples / self.batch)

    def mine(self) -> range:
        """Contiguous chunk ranges, as `features` shards its files."""
        if not 0 <= self.index < self.count:
            raise UserError(f"shard index {self.index} is outside 0..{self.count - 1}")
        per, extra = divmod(self.chunks, self.count)
        start = self.index * per + min(self.index, extra)
        return range(start, start + per + (self.index < extra))

    def sequences(self, chunk: int) -> range:
        return range(chunk * self.batch, min((chunk + 1) * self.batch, self.prompts * self.samples))


def output_name(prompt: str, sample: int) -> str:
    return f"{PurePosixPath(prompt.replace(' ', '_')).with_suffix('')}__{sample}"


class Chunks:
    """OUTPUT/.parts/continue: b.units.json (the sampled units and the prompt failures, written before any
    speech) and b.done.json (the vocoder's failures: the chunk is finished)."""

    def __init__(self, out: Path):
        self.out = out
        self.dir = out / outputs.PARTS / PARTS

    def units_part(self, chunk: int) -> Path:
        return self.dir / f"{chunk:06d}.units.json"

    def done_part(self, chunk: int) -> Path:
        return self.dir / f"{chunk:06d}.done.json"

    def read(self, path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:  # atomic writes leave no torn file; a hand-edited one is redone
            log.warning("%s: unreadable, this chunk is redone", path)
            return None

    def write(self, path: Path, record: dict) -> None:
        with outputs.atomic(path, "w") as f:
            json.dump(record, f)

    def assemble(self, chunks: int) -> bool:
        """continuations.jsonl and errors.jsonl from every chunk, once all are done; False if some are not."""
        if not all(self.done_part(b).is_file() for b in range(chunks)):
            return False
        lines, errors = [], []
        for b in range(chunks):
            units = self.read(self.units_part(b)) or {}
            lines += [json.dumps(r) + "\n" for r in units.get("continuations", [])]
            errors += units.get("errors", []) + (self.read(self.done_part(b)) or {}).get("errors", [])
        with outputs.atomic(self.out / "continuations.jsonl", "w") as f:
            f.writelines(lines)
        errors_path = self.out / "errors.jsonl"
        if errors:
            with outputs.atomic(errors_path, "w") as f:
                f.writelines(json.dumps(e) + "\n" for e in errors)
        else:
            errors_path.unlink(missing_ok=True)
        return True


def speak(out: Path, records: list[dict], synthesize, sample_rate: int) -> list[dict]:
    """A wav per sequence not yet spoken; the vocoder's failures, as errors.jsonl records."""
    failures = []
    for r in records:
        name = output_name(r["prompt"], r["sample"])
        path = out / "wav" / f"{name}.wav"
        if path.is_file():  # spoken before this run was killed
            continue
        try:
            waveform = synthesize(name, r["units"])
        except Exception as e:  # one sequence the vocoder cannot render
            failures.append({"path": name, "error": f"vocoder failed: {type(e).__name__}: "
                                                    f"{str(e).splitlines()[0] if str(e) else ''}"})
            continue
        outputs.save_wav(path, waveform, sample_rate)
    return failures
