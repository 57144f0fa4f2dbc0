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

Exit status: 0 all files done; 2 some files failed; 1 the job could not run.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from . import features_cmd

NAME = "resynth"
HELP = "speech -> units -> speech with textlesslib's vocoders (GSLM Tacotron2, Expresso CodeHiFiGAN)"
log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    features_cmd.add_input_arguments(p)
    p.add_argument("--vocoder", required=True, help="registry vocoder set, or a vocoder .json (local files)")
    p.add_argument("--units", metavar="KMEANS", help="k-means registry name or file (default: the vocoder's)")
    p.add_argument("--speaker", help="speaker name or index (multi-speaker vocoders)")
    p.add_argument("--style", help="style name or index (multi-style vocoders)")
    p.add_argument("--sample-rate", type=int, default=None, help="resample the output (default: the vocoder's rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-units", action="store_true", help="also write the units JSONL")
    p.add_argument("--max-decoder-steps", type=int, default=2000, help="Tacotron2: longest output in mel frames")
    p.add_argument("--denoiser-strength", type=float, default=0.1, help="WaveGlow denoiser strength")
    features_cmd.add_run_arguments(p)


def run(args) -> int:
    import torch

    from .. import inputs, outputs, pipeline
    from ..kmeans import deduplicate
    from ..vocoders import Vocoder, VocoderError, VocoderFiles

    _refuse_unsupported_dense(args)
    try:
        files = VocoderFiles.resolve(args.vocoder)
    except VocoderError as e:
        raise inputs.InputError(str(e)) from None
    units = args.units or files.kmeans
    if units is None:
        raise inputs.InputError(f"{args.vocoder} does not say which k-means it was trained on: pass --units")
    prep = features_cmd.prepare(args, units)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # textlesslib prints progress messages
            vocoder = Vocoder(files, prep.device, args.max_decoder_steps, args.denoiser_strength)
        speaker, style = vocoder.index("speaker", args.speaker), vocoder.index("style", args.style)
        if args.deduplicate and vocoder.kind == "hifigan" and not vocoder.predicts_durations:
            raise VocoderError("--deduplicate: this CodeHiFiGAN has no duration predictor, so it needs every "
                               "repeated unit: drop --deduplicate")
    except VocoderError as e:
        raise inputs.InputError(str(e)) from None
    rate = args.sample_rate or vocoder.sample_rate
    log.info("vocoder %s (%s, %d Hz%s)", args.vocoder, vocoder.kind, vocoder.sample_rate,
             f", resampled to {rate} Hz" if rate != vocoder.sample_rate else "")

    def synthesize(key: str, codes: torch.Tensor):
        # Tacotron collapses repeats by its own hparams; CodeHiFiGAN predicts their durations
        seq = deduplicate(codes)[0] if args.deduplicate and vocoder.kind == "hifigan" else codes.tolist()
        wav = vocoder.synthesize(seq, key, args.seed, speaker, style, deduplicated=args.deduplicate)
        if rate != vocoder.sample_rate:
            import torchaudio.functional

            wav = torchaudio.functional.resample(torch.from_numpy(wav), vocoder.sample_rate, rate).numpy()
        return wav

    layout = outputs.Layout(args.output, "none", args.write_units, args.split, prep.index, prep.count, wav=True)
    features_cmd.claim(layout, {**prep.identity, "vocoder": vocoder.digests, "speaker": speaker, "style": style,
                                "sample_rate": rate, "seed": args.seed, "write_units": args.write_units,
                                "max_decoder_steps": args.max_decoder_steps,
                                "denoiser_strength": args.denoiser_strength})
    job = pipeline.Job(
        items=prep.items, layout=layout, encoder=prep.encoder, quantizer=prep.quantizer,
        deduplicate=args.deduplicate, batch_seconds=prep.batch_seconds, progress=not args.no_progress,
        synthesize=synthesize, sample_rate=rate, label="resynth",
    )
    summary = pipeline.run(job)
    print(summary.line())
    return 2 if summary.failed else 0


def _refuse_unsupported_dense(args) -> None:
    """A registry vocoder whose dense model this fairseq cannot load is refused before any download."""
    from .. import inputs, registry

    if args.model is not None or args.vocoder not in registry.MODELS:
        return
    kmeans = registry.MODELS.get(args.units or registry.vocoder_kmeans(args.vocoder))
    dense = registry.MODELS.get(kmeans.dense) if kmeans and kmeans.dense else None
    if dense is not None and dense.unsupported:
        raise inputs.InputError(f"{args.vocoder} works on units of {dense.name}, which this image cannot load: "
                                f"{dense.unsupported}. A later image variant may carry a newer fairseq.")
