"""Check an exported model against the fairseq reference on your own audio: the report `export` writes, for any
files. The export's own parity.json, when present, says whether any of its files changed since.

  textless-stack parity --model hubert-base-ls960 --against hf:hubert-hf --units hubert-base-ls960-kmeans-100 a.wav b.flac

Exit status: 0 within tolerance; 1 not (or the export could not be read).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..export_contract import DEFAULT_TOLERANCE

NAME = "parity"
HELP = "compare an export (hf:DIR | safetensors:DIR) with the fairseq reference on given audio"


def add_arguments(p) -> None:
    p.add_argument("audio", nargs="+", type=Path, metavar="AUDIO")
    p.add_argument("--model", required=True, help="the original: registry name or fairseq checkpoint")
    p.add_argument("--against", required=True, metavar="FORMAT:DIR", help="hf:DIR or safetensors:DIR")
    p.add_argument("--units", metavar="KMEANS", help="the original k-means: compare units with the export's kmeans.npy")
    p.add_argument("--layer", type=int, help="the units' layer (default: the export's kmeans.json)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    p.add_argument("-o", "--output", type=Path, help="write parity.json and PARITY.md here")
    p.add_argument("--user-dir", metavar="DIR", help="the fairseq plugin (--user-dir) a checkpoint's model needs")


def run(args) -> int:
    from .. import parity  # torch: only when the command runs

    spec = parity.Spec(model=args.model, target=args.against, audio=args.audio, units=args.units, layer=args.layer,
                       tolerance=args.tolerance, user_dir=args.user_dir)
    recorded = Path(args.against.partition(":")[2]) / "parity.json"
    expected = None
    if recorded.is_file():
        try:
            expected = json.loads(recorded.read_text())["exported"]["files"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise parity.ParityError(f"{recorded}: unreadable export record: {e}") from None
    report = parity.run(spec, expected_files=expected)
    if args.output:
        parity.write(report, args.output)
    print(parity.markdown(report))
    print(parity.verdict(report, args.against))
    return 0 if report["status"] == "pass" else 1
