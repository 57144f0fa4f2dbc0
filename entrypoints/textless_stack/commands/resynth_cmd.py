"""Speech-to-speech resynthesis: audio -> HuBERT units -> vocoder -> audio, for many files.

--vocoder names a registry set (`textless-stack models list` shows them):
  GSLM:     hubert-base-ls960-kmeans-{50,100,200}-tacotron   (Tacotron2 + WaveGlow + denoiser, 22.05 kHz)
  Expresso: hubert-base-ls960-layer-9-kmeans-{500,expresso-2000}-hifigan,
            mhubert-base-vp_mls_cv_8lang-kmeans-{2000,expresso-2000}-hifigan  (CodeHiFiGAN, 16 kHz;
            --speaker/--style by name or index)
or a JSON file describing local vocoder files (see textless_stack.vocoders). The dense model, layer
and k-means default to the ones the vocoder was trained on.

Inputs, sharding, resuming and bad-input handling are those of `features`. Outputs under --output:
  wav/<relpath>.wav                      one file per input, at the vocoder's rate (or --sample-rate)
  {split}_{rank}_{nshard}.units.jsonl    with --write-units
  {split}_{rank}_{nshard}.errors.jsonl   files that failed, with the reason
Audio is reproducible: each file's sampling noise is seeded from --seed and its path.

Exit status: 0 all files done; 2 some files failed; 1 the job could not run; 143 terminated by SIGTERM.
"""

from __future__ import annotations

from .options import add_input_arguments, add_run_arguments

NAME = "resynth"
HELP = "speech -> units -> speech with textlesslib's vocoders (GSLM Tacotron2, Expresso CodeHiFiGAN)"


def add_arguments(p) -> None:
    add_input_arguments(p)
    p.add_argument("--vocoder", required=True, help="registry vocoder set, or a vocoder .json (local files)")
    p.add_argument("--units", metavar="KMEANS", help="k-means registry name or file (default: the vocoder's)")
    p.add_argument("--speaker", help="speaker name or index (multi-speaker vocoders)")
    p.add_argument("--style", help="style name or index (multi-style vocoders)")
    p.add_argument("--sample-rate", type=int, default=None, help="resample the output (default: the vocoder's rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-units", action="store_true", help="also write the units JSONL")
    p.add_argument("--max-decoder-steps", type=int, default=2000, help="Tacotron2: longest output in mel frames")
    p.add_argument("--denoiser-strength", type=float, default=0.1, help="WaveGlow denoiser strength")
    add_run_arguments(p)


def run(args) -> int:
    from ..jobs import ResynthSpec, resynth

    summary = resynth(ResynthSpec.from_namespace(args))
    print(summary.line())
    return 2 if summary.failed else 0
