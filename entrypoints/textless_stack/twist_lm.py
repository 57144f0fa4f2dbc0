"""TWIST speech LMs: Hugging Face causal LMs (OPT, LLaMA) over 25 Hz mHuBERT units, sampled as textlesslib's
examples/twist/speech_lm.py does at ba33d669: unit u is token `config.offset + u`, and
`model.generate(offset + units, max_length=min(250, 3 * len), do_sample=True, temperature=0.8)`.

A TWIST LM is a directory that transformers' `from_pretrained` reads (config.json with `offset`, and
model.safetensors or pytorch_model.bin). It is loaded strictly: a weight missing from the files, left
unused, or of another shape is an error, never a silently random layer.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from .ulm import Sampling, UlmError

log = logging.getLogger(__name__)

# textlesslib's generate_with_offset: at most 3x the prompt, never more than 250 tokens in all
DEFAULTS = Sampling(temperature=0.8, max_len_a=3.0, max_len_b=0, max_len=250)


class TwistLM:
    family = "twist"
    defaults = DEFAULTS

    def __init__(self, directory: Path, device: torch.device):
        import json

        directory = Path(directory)
        config_path = directory / "config.json"
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as e:
            raise UlmError(f"{config_path}: cannot read it as a Hugging Face config: {e}") from None
        if not isinstance(config.get("offset"), int) or config["offset"] < 0:
            raise UlmError(f"{config_path}: no integer `offset` in it: not a TWIST speech LM (textlesslib's "
                           "speech_lm.py shifts unit u to token offset + u)")
        self.offset = config["offset"]
        self.units = int(config.get("vocab_size", 0)) - self.offset
        if self.units <= 0:
            raise UlmError(f"{config_path}: vocab_size {config.get('vocab_size')} leaves no unit tokens after "
                           f"offset {self.offset}")
        self.known = set(range(self.units))
        self.sha256 = _directory_digest(directory)
        self.model = _load_strictly(directory).to(device).eval()
        self.device = device
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 0) or 1 << 30)
        self.pad = next((t for t in (self.model.config.pad_token_id, self.model.config.eos_token_id, 0)
                         if isinstance(t, int)), 0)
        eos = self.model.config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if isinstance(eos, int) else [])

    def limit(self, prompt_units: int, sampling: Sampling) -> int:
        """The longest sequence (prompt included) a prompt of this length may grow to."""
        limit = min(int(sampling.max_len_a * prompt_units + sampling.max_len_b), self.max_positions)
        return min(limit, sampling.max_len) if sampling.max_len else limit

    def sample(self, prompts: list[list[int]], sampling: Sampling, seed: int) -> list[list[int]]:
        """Each prompt followed by its continuation, as unit numbers. Prompts are left-padded (the attention
        mask hides the padding) and each row is cut at its own limit; rows go to `generate` together unless
        padding to the longest would leave a row short of the model's positions (then in order, in groups)."""
        torch.manual_seed(seed)
        sequences, group = [], []
        for p in prompts:
            if group and self._fits(group + [p], sampling) is False:
                sequences += self._generate(group, sampling)
                group = []
            group.append(p)
        return sequences + self._generate(group, sampling)

    def _fits(self, group: list[list[int]], sampling: Sampling) -> bool:
        return max(map(len, group)) + max(self.limit(len(p), sampling) - len(p) for p in group) <= self.max_positions

    def _generate(self, prompts: list[list[int]], sampling: Sampling) -> list[list[int]]:
        longest = max(map(len, prompts))
        ids = torch.full((len(prompts), longest), self.pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, longest - len(p):] = torch.tensor(p, dtype=torch.long) + self.offset
            mask[row, longest - len(p):] = 1
        new = min(max(self.limit(len(p), sampling) - len(p) for p in prompts), self.max_positions - longest)
        with torch.inference_mode():
            out = self.model.generate(ids.to(self.device), attention_mask=mask.to(self.device), do_sample=True,
                                      temperature=sampling.temperature, max_new_tokens=new,
                                      pad_token_id=self.pad).cpu()
        return [self._units(p, out[row, longest:].tolist(), self.limit(len(p), sampling))
                for row, p in enumerate(prompts)]

    def _units(self, prompt: list[int], generated: list[int], limit: int) -> list[int]:
        tokens = []
        for t in generated[: limit - len(prompt)]:
            if t in self.eos:
                break
            tokens.append(t - self.offset)
        kept = [u for u in tokens if 0 <= u < self.units]
        if len(kept) != len(tokens):  # a text token sampled: no vocoder can speak it
            log.warning("%d sampled tokens that are no unit dropped", len(tokens) - len(kept))
        return prompt + kept


def _load_strictly(directory: Path):
    import transformers

    transformers.utils.logging.disable_progress_bar()  # one bar per load otherwise, on every run's stderr
    try:
        model, info = transformers.AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, output_loading_info=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise UlmError(f"{directory}: transformers {transformers.__version__} cannot load it as a causal LM: "
                       f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    problems = {what: sorted(map(str, info.get(key) or ()))
                for what, key in (("missing from the files", "missing_keys"),
                                  ("in the files but unused", "unexpected_keys"),
                                  ("of another shape", "mismatched_keys"))}
    problems = {what: keys for what, keys in problems.items() if keys}
    if problems:
        said = "; ".join(f"{len(keys)} weights {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                         for what, keys in problems.items())
        raise UlmError(f"{directory}: not loaded strictly: {said}; refusing to sample from a partly random model")
    return model


def _directory_digest(directory: Path) -> str:
    """One sha256 for the directory: over the sorted names and sha256s of its files."""
    from .integrity import sha256_file

    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(directory).as_posix()} {sha256_file(path)}\n".encode())
    return digest.hexdigest()
