"""Speech continuation with a unit LM: prompts -> units -> LM samples -> (speech).

The LM is a registry name or a directory:
- GSLM's unit LMs (hubert-base-ls960-kmeans-{50,100,200}-ulm, cpc-big-ll6k-kmeans-{50,100,200}-ulm), or a
  directory with checkpoint_best.pt + dict.txt (fairseq `transformer_lm`, --task language_modeling), loaded
  strictly, sampled with fairseq's own generator (beam 1, sampling);
- TWIST's speech LMs (twist-350m, twist-1.3b, twist-7b), or a Hugging Face directory whose config.json has
  TWIST's `offset`, loaded strictly, sampled with transformers' `generate` as textlesslib's speech_lm.py does.
No sha256 is published for either: the digest is recorded at the first download and verified after.
Prompts are audio files (INPUT...: units by --units, the k-means the LM was trained on, and its dense model;
deduplicated, as GSLM and TWIST do) or --prompts FILE (one line of unit numbers per prompt).

Sampling settings not given are the LM's own: GSLM --temperature 0.7 --max-len-a 0 --max-len-b 1000;
TWIST --temperature 0.8 --max-len-a 3 --max-len-b 0 --max-len 250. Lengths count the prompt too.
Sequence i is sample i % S of prompt i // S; chunk b holds sequences b*B .. (b+1)*B - 1 (B = --batch-size),
is sampled as one batch and seeded with --seed + b. So the outputs do not depend on --num-shards or on
resuming, but do depend on --batch-size (the RNG draws for the whole batch).

Outputs under --output (the units of a chunk are written before its speech):
  continuations.jsonl         {"prompt", "sample", "prompt_units", "units"}; units begin with the prompt
                              (written when every chunk is done: by the last shard to finish)
  wav/<prompt>__<sample>.wav  with --vocoder (a Tacotron set, or a CodeHiFiGAN with a duration predictor):
                              the whole sequence, untrimmed (GSLM's sample.py cuts its audio at ~16 s)
  errors.jsonl                prompts that could not be read or continued, outputs the vocoder failed on
  continue.json               LM / dense model / k-means / vocoder digests, the sampling settings and the seed
  .parts/continue/            one units file and one done marker per chunk: a killed run resumes there

Exit status: 0 done; 2 some prompts or outputs failed (the others are done); 1 the job could not run.
"""

from __future__ import annotations

from pathlib import Path

NAME = "continue"
HELP = "speech continuation with a unit LM, GSLM or TWIST (prompt -> units -> LM -> speech)"


def add_arguments(p) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio prompts: directory, glob, .tsv or .jsonl")
    p.add_argument("--prompts", type=Path, help="unit prompts instead: one line of unit numbers per prompt")
    p.add_argument("--lm", required=True,
                   help="registry unit LM (e.g. hubert-base-ls960-kmeans-100-ulm, twist-350m) or a directory: "
                        "checkpoint_best.pt + dict.txt (GSLM), or a Hugging Face config.json with `offset` (TWIST)")
    p.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    p.add_argument("--units", metavar="KMEANS",
                   help="audio prompts: the k-means the LM was trained on (default: a registry LM's own)")
    p.add_argument("--model", help="audio prompts: dense model (default: the k-means model's)")
    p.add_argument("--layer", type=int, help="audio prompts: the dense model's layer (default: the registry's)")
    p.add_argument("--prompt-seconds", type=float, help="audio prompts: use only their first seconds")
    p.add_argument("--vocoder", help="speak the sequences: registry vocoder set or .json (default: units only)")
    p.add_argument("--speaker", help="speaker name or index (multi-speaker vocoders)")
    p.add_argument("--style", help="style name or index (multi-style vocoders)")
    p.add_argument("--prefix-size", type=int, default=-1,
                   help="continue from each prompt's first N units (fairseq's --prefix-size; -1: all of them)")
    p.add_argument("--temperature", type=float, help="default: the LM's own (GSLM 0.7, TWIST 0.8)")
    p.add_argument("--seed", type=int, default=0, help="chunk b is seeded with SEED + b")
    p.add_argument("--max-len-a", type=float, help="longest output: a * prompt length + b units (GSLM 0, TWIST 3)")
    p.add_argument("--max-len-b", type=int, help="(GSLM 1000, TWIST 0)")
    p.add_argument("--max-len", type=int, help="cap on the whole output (TWIST 250; GSLM's generator has none)")
    p.add_argument("--samples-per-prompt", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16, help="sequences sampled together (one chunk)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")
    p.add_argument("--shard-index", type=int, default=None, help="default: SLURM_ARRAY_TASK_ID, else 0")
    p.add_argument("--num-shards", type=int, default=None, help="default: SLURM_ARRAY_TASK_COUNT, else 1")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    from ..jobs import ContinueSpec, continue_speech

    result = continue_speech(ContinueSpec.from_namespace(args))
    print(result.line())
    return 2 if result.failures else 0
