"""The main job on bundled sample speech: HuBERT features and units, end to end.

With network (or a filled model cache) it uses hubert-base-ls960 and its 100-unit k-means.
Offline it generates a tiny HuBERT checkpoint with random weights instead and says so:
the pipeline is the same, the numbers mean nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

NAME = "demo"
HELP = "extract features and units from the bundled sample speech"
log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", type=Path, default=Path("demo-output"))
    p.add_argument("--device", default="auto")


def run(args) -> int:
    from .. import store, tiny
    from . import features_cmd

    try:
        store.resolve("hubert-base-ls960")
        store.resolve("hubert-base-ls960-kmeans-100")
        model, units, layer = "hubert-base-ls960", "hubert-base-ls960-kmeans-100", None
    except store.ModelUnavailable as e:
        log.warning("%s", e)
        log.warning("OFFLINE DEMO: using a tiny HuBERT with RANDOM weights generated now; features are not meaningful")
        model = str(tiny.make_checkpoint(args.output / "tiny-demo-hubert.pt"))
        units, layer = None, 2
    argv = [str(SAMPLES), "--output", str(args.output), "--model", model, "--deduplicate", "--split", "demo",
            "--device", args.device, *(["--units", units] if units else []), *(["--layer", str(layer)] if layer else [])]
    features_args = features_cmd.parse(argv)
    code = features_cmd.run(features_args)
    for path in sorted(args.output.rglob("*.npy")):
        import numpy as np

        array = np.load(path)
        print(f"{path}: {array.shape[0]} frames x {array.shape[1]} dims")
    return code
