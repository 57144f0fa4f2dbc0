"""Speech continuation (GSLM): prompts -> unit LM samples -> (speech); the outputs are listed in
commands/continue_cmd.py. Prompts are audio (units by the LM's own dense model and k-means, deduplicated,
as GSLM's examples/gslm/sample.py does) or lines of units (fairseq's `sample.py --prompts`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from . import audio, outputs
from .audio import AudioError
from .errors import UserError

log = logging.getLogger(__name__)


@dataclass
class Prompt:
    name: str              # the input's key (audio) or "line N" (unit prompts)
    units: list[int]


@dataclass
class Result:
    prompts: int = 0
    outputs: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return (f"continue: {self.prompts} prompts -> {self.outputs} continuations"
                f"{f', {len(self.failures)} failed (errors.jsonl)' if self.failures else ''}")


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


def audio_prompts(items, encoder, quantizer, prompt_seconds: float | None,
                  failures: list[tuple[str, str]]) -> list[Prompt]:
    import torch

    from .kmeans import deduplicate

    prompts = []
    for item in items:
        try:
            wav = audio.decode(item.path).wav
        except AudioError as e:
            failures.append((item.key, str(e)))
            continue
        if prompt_seconds:
            wav = wav[: int(prompt_seconds * audio.SAMPLE_RATE)]
        if encoder.geometry.frames(wav.numel()) == 0:
            failures.append((item.key, f"too short: {wav.numel()} samples, shorter than the model's receptive "
                                       f"field ({encoder.geometry.receptive_field} samples at 16 kHz)"))
            continue
        units = quantizer(torch.cat(encoder.encode(encoder.chunks(wav))))
        prompts.append(Prompt(item.key, deduplicate(units)[0]))
    return prompts


def within_limits(prompts: list[Prompt], max_positions: int, max_len_a: float, max_len_b: int,
                  failures: list[tuple[str, str]]) -> list[Prompt]:
    """Prompts the generator can continue: shorter than the LM's context and than the output length asked for."""
    kept = []
    for p in prompts:
        limit = min(max_positions - 1, int(max_len_a * len(p.units) + max_len_b))
        if len(p.units) >= limit:
            failures.append((p.name, f"a prompt of {len(p.units)} units leaves no room to continue: the output is "
                                     f"at most {limit} units (--max-len-a/-b, the LM's {max_positions} positions)"))
        else:
            kept.append(p)
    return kept


def write_units(out: Path, prompts: list[Prompt], sequences: list[list[int]], samples: int,
                record: dict) -> list[tuple[str, list[int]]]:
    """continue.json and continuations.jsonl, before any speech: (output name, units) per sequence."""
    outputs.save_json(out / "continue.json", record)
    named, lines = [], []
    for i, seq in enumerate(sequences):
        prompt, sample = prompts[i // samples], i % samples
        lines.append(json.dumps({"prompt": prompt.name, "sample": sample, "prompt_units": prompt.units,
                                 "units": seq}) + "\n")
        named.append((f"{PurePosixPath(prompt.name.replace(' ', '_')).with_suffix('')}__{sample}", seq))
    with outputs.atomic(out / "continuations.jsonl", "w") as f:
        f.writelines(lines)
    return named


def speak(out: Path, named: list[tuple[str, list[int]]], synthesize, sample_rate: int,
          failures: list[tuple[str, str]]) -> None:
    for name, seq in named:
        try:
            waveform = synthesize(name, seq)
        except Exception as e:  # one sequence the vocoder cannot render
            failures.append((name, f"vocoder failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
            continue
        outputs.save_wav(out / "wav" / f"{name}.wav", waveform, sample_rate)


def write_errors(out: Path, failures: list[tuple[str, str]]) -> None:
    if failures:
        with outputs.atomic(out / "errors.jsonl", "w") as f:
            f.writelines(json.dumps({"path": key, "error": reason}) + "\n" for key, reason in failures)
    for key, reason in failures:
        log.error("%s: %s", key, reason)


def repeat(prompts: list[Prompt], samples: int) -> list[list[int]]:
    return [p.units for p in prompts for _ in range(samples)]
