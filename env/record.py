"""Collect what an environment or image was built from into one JSON record.

    python env/record.py SRC_DIR > manifest-part.json

Reads the source records and patch reports that build-wheel.sh and the hydra
patch step leave in SRC_DIR, plus the pins, so a stand-in is never silent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pins as pins_mod


def collect(src: Path) -> dict:
    pins = pins_mod.load()
    sources, patches = {}, {}
    for project in ("fairseq", "textlesslib"):
        record = src / f"{project}-source.json"
        text = record.read_text().strip() if record.is_file() else ""
        sources[project] = json.loads(text) if text else {"project": project, "kind": "unavailable"}
    for project in ("fairseq", "textlesslib", "hydra"):
        report = src / f"{project}-patch-report.json"
        if report.is_file():
            patches[project] = json.loads(report.read_text())
    standins = [p for p, r in sources.items() if r.get("standin")]
    return {
        "pins": pins,
        "sources": sources,
        "standins_used": standins,
        "unavailable": [p for p, r in sources.items() if r.get("kind") == "unavailable"],
        "patches": patches,
    }


if __name__ == "__main__":
    json.dump(collect(Path(sys.argv[1])), sys.stdout, indent=2)
    print()
