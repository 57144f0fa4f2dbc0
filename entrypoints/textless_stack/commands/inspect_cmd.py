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
    p.add_argument("--user-dir", metavar="DIR", help="the fairseq plugin (--user-dir) the model was trained with")


def run(args) -> int:
    from ..loader import config_section, load_model

    loaded = load_model(args.checkpoint, user_dir=args.user_dir)
    model, model_cfg, task_cfg = loaded.model, config_section(loaded.cfg, "model"), config_section(loaded.cfg, "task")
    summary = {
        "path": str(loaded.path),
        "model": model_cfg.get("_name") or model_cfg.get("arch"),
        "task": task_cfg.get("_name") or model_cfg.get("task"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_layers": model_cfg.get("encoder_layers"),
        "normalize": bool(task_cfg.get("normalize", False)),
        "upgrades": loaded.upgrades,
    }
    print(json.dumps(summary, indent=2))
    return 0
