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


def add_arguments(p) -> None:
    p.add_argument("-o", "--output", type=Path, default=Path("demo-output"))
    p.add_argument("--device", default="auto")


def run(args) -> int:
    import dataclasses

    import numpy as np

    from .. import store
    from ..jobs import FeaturesSpec, features
    from ..testing import SAMPLES, tiny

    spec = FeaturesSpec(inputs=(str(SAMPLES),), output=args.output, model="hubert-base-ls960",
                        units="hubert-base-ls960-kmeans-100", deduplicate=True, split="demo", device=args.device)
    try:
        summary = features(spec)
    except store.ModelUnavailable as e:
        log.warning("%s", e)
        log.warning("OFFLINE DEMO: using a tiny HuBERT with RANDOM weights generated now; features are not meaningful")
        tiny_model = str(tiny.make_checkpoint(args.output / "tiny-demo-hubert.pt"))
        summary = features(dataclasses.replace(spec, model=tiny_model, units=None, layer=2))
    print(summary.line())
    for path in sorted(args.output.rglob("*.npy")):
        array = np.load(path)
        print(f"{path}: {array.shape[0]} frames x {array.shape[1]} dims")
    return 2 if summary.failed else 0
