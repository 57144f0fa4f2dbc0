"""Load a fairseq checkpoint through the project's loader and describe it.

Verifies registry files by sha256, unpickles under the allowlist, applies and lists
upgrades, loads strictly. Prints one JSON object on stdout.
"""

from __future__ import annotations

import json

NAME = "inspect"
HELP = "load a checkpoint safely and losslessly, and describe it"


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="path to a fairseq checkpoint (.pt)")


def run(args) -> int:
    from ..loader import load_model

    loaded = load_model(args.checkpoint)
    model = loaded.model
    summary = {
        "path": str(loaded.path),
        "model": loaded.cfg.model.get("_name"),
        "task": loaded.cfg.task.get("_name"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_layers": loaded.cfg.model.get("encoder_layers"),
        "normalize": bool(loaded.cfg.task.get("normalize", False)),
        "upgrades": loaded.upgrades,
    }
    print(json.dumps(summary, indent=2))
    return 0
