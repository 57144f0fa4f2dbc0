"""Recompute a random sample of a `features` output from the provenance it records (OUTPUT/provenance.json),
in this environment, and compare: per file the max |diff| of the features, the agreement of the units, and
whether the bytes are identical.

  textless-stack verify OUT --sample 16 --seed 1 --json verify.json
  textless-stack verify OUT --inputs /data/LibriSpeech/dev-clean --model hubert_base_ls960.pt   # a reader's copy

fp32 on CPU in the environment that wrote the outputs must reproduce their bytes; anywhere else the dtype's
tolerance applies (precision.py). Recorded settings that differ from this environment are listed.

Exit status: 0 reproduced; 1 not (or the provenance, an input or a model could not be read).
"""

from __future__ import annotations

from pathlib import Path

from .. import precision

NAME = "verify"
HELP = "recompute a sample of a features output from its provenance and compare"


def add_arguments(p) -> None:
    p.add_argument("output", type=Path, metavar="OUT", help="a features --output directory")
    p.add_argument("--sample", type=int, default=8, metavar="N", help="files to recompute (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="which files: the sample's random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--dtype", choices=precision.DTYPES, help="recompute in another precision (default: the recorded)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    here = p.add_argument_group("where the recorded files are now (default: at the recorded paths)")
    here.add_argument("--inputs", nargs="+", metavar="PATH",
                      help="the recorded inputs (directory, file or .tsv), one for each, in the recorded order")
    here.add_argument("--model", metavar="PATH", help="the recorded model file (its sha256 must match the record)")
    here.add_argument("--units", metavar="PATH", help="the recorded k-means file (its sha256 must match the record)")


def run(args) -> int:
    from ..outputs import save_json
    from ..verify import VerifySpec, markdown, verdict, verify

    report = verify(VerifySpec(output=args.output, sample=args.sample, seed=args.seed, device=args.device,
                               dtype=args.dtype, inputs=tuple(args.inputs) if args.inputs else None,
                               model=args.model, units=args.units))
    if args.json:
        save_json(args.json, report)
    print(markdown(report))
    print(verdict(report))
    return 0 if report["status"] == "pass" else 1
