"""Speech continuation with a GSLM unit language model: prompts -> units -> LM samples -> (speech).

The LM is a registry name (GSLM's ULMs: hubert-base-ls960-kmeans-{50,100,200}-ulm,
cpc-big-ll6k-kmeans-{50,100,200}-ulm; no sha256 is published for them, so the digest is recorded at the
first download and verified after) or a directory with checkpoint_best.pt and dict.txt (fairseq
`transformer_lm`, trained with `--task language_modeling`), loaded strictly. Prompts are audio files (INPUT...: units
by --units, the k-means the LM was trained on, and its dense model; deduplicated, as GSLM does) or
--prompts FILE (one line of unit numbers per prompt). Sampling is fairseq's own generator (beam 1,
sampling, --temperature), batched, seeded once by --seed: the same command gives the same outputs.

Outputs under --output (the units are written before any speech):
  continuations.jsonl         {"prompt", "sample", "prompt_units", "units"}; units begin with the prompt
  wav/<prompt>__<sample>.wav  with --vocoder (a Tacotron set, or a CodeHiFiGAN with a duration predictor):
                              the whole sequence, untrimmed (GSLM's sample.py cuts its audio at ~16 s)
  errors.jsonl                prompts that could not be read or continued, outputs the vocoder failed on
  continue.json               LM / dense model / k-means / vocoder digests, the sampling settings and the seed
The samples depend on the seed and on which prompts share a batch (--batch-size; fairseq sorts each batch by
length): rerun with the same prompts and options to get the same units.

Exit status: 0 done; 2 some prompts or outputs failed (the others are done); 1 the job could not run.
"""

from __future__ import annotations

from pathlib import Path

NAME = "continue"
HELP = "speech continuation with a GSLM unit language model (prompt -> units -> LM -> speech)"


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio prompts: directory, glob, .tsv or .jsonl")
    p.add_argument("--prompts", type=Path, help="unit prompts instead: one line of unit numbers per prompt")
    p.add_argument("--lm", required=True,
                   help="registry unit LM (e.g. hubert-base-ls960-kmeans-100-ulm) or a directory with "
                        "checkpoint_best.pt + dict.txt")
    p.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    p.add_argument("--units", metavar="KMEANS",
                   help="audio prompts: the k-means the LM was trained on (default: a registry LM's own)")
    p.add_argument("--model", help="audio prompts: dense model (default: the k-means model's)")
    p.add_argument("--layer", type=int, help="audio prompts: the dense model's layer (default: the registry's)")
    p.add_argument("--prompt-seconds", type=float, help="audio prompts: use only their first seconds")
    p.add_argument("--vocoder", help="speak the sequences: registry vocoder set or .json (default: units only)")
    p.add_argument("--speaker", help="speaker name or index (multi-speaker vocoders)")
    p.add_argument("--style", help="style name or index (multi-style vocoders)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-len-a", type=float, default=0.0, help="longest output: a * prompt length + b tokens")
    p.add_argument("--max-len-b", type=int, default=1000)
    p.add_argument("--samples-per-prompt", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16, help="prompts sampled together")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")


def run(args) -> int:
    from ..jobs import ContinueSpec, continue_speech

    result = continue_speech(ContinueSpec.from_namespace(args))
    print(result.line())
    return 2 if result.failures else 0
