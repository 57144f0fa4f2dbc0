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


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("--variant")
    ap.add_argument("--base", help="the base image reference the build used")
    ap.add_argument("--base-standin", choices=["true", "false"])
    ap.add_argument("--revision", help="this repository's commit")
    ap.add_argument("--freeze", type=Path, help="`pip freeze` output of the environment")
    args = ap.parse_args(argv)
    record = collect(args.src)
    if args.variant:
        record["variant"] = {"name": args.variant, **record["pins"]["variants"][args.variant]}
    if args.base:
        record["base_image"] = {"ref": args.base, "standin": args.base_standin == "true",
                                "pinned": record["pins"]["base_image"]["ref"]}
        if args.base_standin == "true":
            record["standins_used"].append("base_image")
    if args.revision:
        record["revision"] = args.revision
    if args.freeze:
        record["freeze"] = [line for line in args.freeze.read_text().splitlines() if line.strip()]
    json.dump(record, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
