"""Unit language models. `open_lm` tells them apart by their files:
- GSLM's (here): a fairseq `transformer_lm` over units, loaded strictly, sampled with fairseq's own generator,
  as textlesslib's UnitLanguageModelSampler does (examples/gslm/sampler.py at ba33d669);
- TWIST's (twist_lm.py): a Hugging Face causal LM over 25 Hz units.
Both give `known` (the units a prompt may use), `units` (the k-means size they model), `sha256`,
`defaults` (their sampling settings), `limit(prompt length, sampling)` and `sample(prompts, sampling, seed)`.

A ULM is a directory: checkpoint_best.pt + dict.txt (the unit vocabulary, one "unit count" line each).
Sampling goes through fairseq's GeneratorHubInterface.generate (the SequenceGenerator with sampling,
beam 1), which batches the prompts; the hypothesis starts with the prompt (GSLM speaks it too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError

log = logging.getLogger(__name__)


class UlmError(UserError):
    pass


@dataclass(frozen=True)
class Sampling:
    """Generation options, with GSLM's defaults (examples/gslm/sample.py). The output is at most
    max_len_a * prompt + max_len_b units, prompt included, and at most max_len (TWIST's cap; fairseq's generator
    has none). GSLM samples one prompt at a time; here `batch_size` sequences go together, and the samples
    depend on which share a batch (the RNG draws for the whole batch)."""
    temperature: float = 0.7
    max_len_a: float = 0.0
    max_len_b: int = 1000
    max_len: int | None = None
    seed: int = 0
    batch_size: int = 16


def open_lm(directory: Path, device: torch.device):
    """A unit LM directory: checkpoint_best.pt + dict.txt (GSLM, fairseq) or config.json (TWIST, transformers)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UlmError(f"{directory}: no such directory (a unit LM is a registry name or a directory)")
    if (directory / "config.json").is_file() and not (directory / "checkpoint_best.pt").exists():
        from .twist_lm import TwistLM

        return TwistLM(directory, device)
    return UnitLM(directory, device)


class UnitLM:
    family = "gslm"
    defaults = Sampling()

    def __init__(self, directory: Path, device: torch.device):
        from fairseq.data import Dictionary
        from fairseq.hub_utils import GeneratorHubInterface

        from .loader import load_model, unpickle

        directory = Path(directory)
        checkpoint, vocabulary = directory / "checkpoint_best.pt", directory / "dict.txt"
        for needed in (checkpoint, vocabulary):
            if not needed.is_file():
                raise UlmError(f"{needed}: no such file (a unit LM directory holds checkpoint_best.pt and dict.txt)")
        state = unpickle(checkpoint)
        embeddings = state.get("model", {}).get("decoder.embed_tokens.weight") if isinstance(state, dict) else None
        if embeddings is None:
            raise UlmError(f"{checkpoint}: no decoder.embed_tokens.weight in it: not a unit language model "
                           "(fairseq transformer_lm)")
        try:
            symbols = len(Dictionary.load(str(vocabulary)))
        except Exception as e:
            raise UlmError(f"{vocabulary}: not a fairseq dictionary: {e}") from None
        if symbols != embeddings.shape[0]:  # before building a model of the wrong size
            raise UlmError(f"{vocabulary}: {symbols} symbols, but {checkpoint.name} was trained with "
                           f"{embeddings.shape[0]}: not this model's dictionary")
        loaded = load_model(checkpoint, task_data=directory, state=state)
        if loaded.cfg.task.get("_name") != "language_modeling":
            raise UlmError(f"{checkpoint}: a {loaded.cfg.task.get('_name')!r} checkpoint, not a unit language model "
                           "(fairseq --task language_modeling)")
        self.dictionary = loaded.task.source_dictionary
        # fairseq pads a dictionary to a multiple of 8 with madeupwordNNNN symbols
        symbols = [self.dictionary[i] for i in range(self.dictionary.nspecial, len(self.dictionary))
                   if not self.dictionary[i].startswith("madeupword")]
        if not all(s.isdigit() for s in symbols):
            bad = next(s for s in symbols if not s.isdigit())
            raise UlmError(f"{vocabulary}: symbol {bad!r} is not a unit number: not a unit LM's dictionary")
        self.known = set(map(int, symbols))
        self.units = max(self.known) + 1 if symbols else 0  # the k-means size it expects
        self.sha256 = loaded.sha256
        # the whole interface moves: generate() puts each batch on the device of its own buffer
        self.hub = GeneratorHubInterface(loaded.cfg, loaded.task, [loaded.model]).eval().to(device)
        self.max_positions = loaded.model.max_positions()

    def encode(self, units: list[int]) -> torch.Tensor:
        return self.dictionary.encode_line(" ".join(map(str, units)), add_if_not_exist=False,
                                           append_eos=True).long()

    def limit(self, prompt_units: int, sampling: Sampling) -> int:
        """The longest sequence (prompt included) a prompt of this length may grow to."""
        return min(self.max_positions - 1, int(sampling.max_len_a * prompt_units + sampling.max_len_b))

    def sample(self, prompts: list[list[int]], sampling: Sampling, seed: int) -> list[list[int]]:
        """Each prompt followed by its continuation, as unit numbers (the final eos dropped)."""
        from fairseq import utils

        if sampling.max_len is not None:
            raise UlmError("--max-len: fairseq's generator takes no cap; bound GSLM's outputs with --max-len-a/-b")
        utils.set_torch_seed(seed)
        tokens = [self.encode(p) for p in prompts]
        # batch_size alone sizes the batches: the checkpoint's training max_tokens (e.g. 256) would split them
        self.hub.cfg.dataset.batch_size, self.hub.cfg.dataset.max_tokens = sampling.batch_size, None
        with torch.inference_mode():
            hypos = self.hub.generate(tokens, beam=1, sampling=True, temperature=sampling.temperature,
                                      max_len_a=sampling.max_len_a, max_len_b=sampling.max_len_b, prefix_size=-1)
        return [self.decode(h[0]["tokens"]) for h in hypos]

    def decode(self, tokens: torch.Tensor) -> list[int]:
        special = self.dictionary.nspecial
        symbols = [self.dictionary[t] for t in tokens.tolist() if t >= special]
        dropped = sum(not s.isdigit() for s in symbols)
        if dropped:  # a padding symbol (madeupwordNNNN) sampled: no vocoder can speak it
            log.warning("%d sampled symbols that are no unit dropped (%s)", dropped,
                        ", ".join(sorted({s for s in symbols if not s.isdigit()})))
        return [int(s) for s in symbols if s.isdigit()]
