"""Speech continuation (GSLM): prompt -> units -> unit LM sampling -> (vocoder) -> speech.

Prompts are audio (units by the LM's own dense model and k-means, deduplicated, as GSLM's
examples/gslm/sample.py does, optionally cut to --prompt-seconds) or lines of units (fairseq's
`sample.py --prompts`). Every prompt is repeated --samples-per-prompt times and all are sampled in
batches by fairseq's generator, so one seed fixes every output. Outputs under --output:
  continuations.jsonl   {"prompt", "sample", "prompt_units", "units"} per output; units start with the prompt's
  wav/<prompt>__<sample>.wav   with --vocoder: the whole sequence spoken (prompt, then continuation)
  errors.jsonl          prompts that could not be read
  continue.json         the record: LM, k-means and vocoder digests, sampling settings, seed
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from . import audio, inputs, outputs
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
                f"{f', {len(self.failures)} prompts failed' if self.failures else ''}")


def unit_prompts(path: Path, k: int) -> list[Prompt]:
    """One prompt per non-empty line: unit numbers separated by spaces."""
    prompts = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            units = [int(x) for x in line.split()]
        except ValueError:
            raise UserError(f"{path}:{n}: not a line of unit numbers: {line[:60]!r}") from None
        bad = [u for u in units if not 0 <= u < k]
        if bad:
            raise UserError(f"{path}:{n}: unit {bad[0]} is outside the LM's 0..{k - 1}")
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
        chunks = encoder.chunks(wav)
        if not chunks:
            failures.append((item.key, f"too short: {wav.numel()} samples"))
            continue
        units = quantizer(torch.cat(encoder.encode(chunks)))
        prompts.append(Prompt(item.key, deduplicate(units)[0]))
    return prompts


def write(out: Path, prompts: list[Prompt], sequences: list[list[int]], samples: int, record: dict,
          failures: list[tuple[str, str]], speak=None, sample_rate: int = 0) -> Result:
    outputs.check_writable(out)
    outputs.save_json(out / "continue.json", record)
    lines = []
    for i, seq in enumerate(sequences):
        prompt, sample = prompts[i // samples], i % samples
        lines.append(json.dumps({"prompt": prompt.name, "sample": sample, "prompt_units": prompt.units,
                                 "units": seq}) + "\n")
        if speak is not None:
            name = prompt.name.replace(" ", "_")
            outputs.save_wav(out / "wav" / f"{PurePosixPath(name).with_suffix('')}__{sample}.wav",
                             speak(f"{name}#{sample}", seq), sample_rate)
    with outputs.atomic(out / "continuations.jsonl", "w") as f:
        f.writelines(lines)
    if failures:
        with outputs.atomic(out / "errors.jsonl", "w") as f:
            f.writelines(json.dumps({"path": key, "error": reason}) + "\n" for key, reason in failures)
    for key, reason in failures:
        log.error("%s: %s", key, reason)
    return Result(len(prompts), len(sequences), failures)


def record_of(lm, sampling, samples: int, **files) -> dict:
    return {"lm_sha256": lm.sha256, "sampling": asdict(sampling), "samples_per_prompt": samples,
            "command": sys.argv[1:] and ["textless-stack", *sys.argv[1:]], **files}


def repeat(prompts: list[Prompt], samples: int) -> list[list[int]]:
    return [p.units for p in prompts for _ in range(samples)]


def collect(spec_inputs) -> list:
    items = [item for one in spec_inputs for item in inputs.collect(one)]
    inputs.check_unique(items)
    return items
