"""python -m patcher PROJECT ROOT [--report FILE] [--flavour NAME]

Exit 0 when every transform is applied (or already was), 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import PROJECTS, PatchError, apply


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m patcher", description=__doc__.splitlines()[0])
    ap.add_argument("project", choices=sorted(PROJECTS))
    ap.add_argument("root", type=Path, help="source tree (or site-packages for hydra)")
    ap.add_argument("--report", type=Path, help="write the JSON report here")
    ap.add_argument("--flavour", help="skip detection (tests)")
    args = ap.parse_args(argv)
    try:
        report = apply(PROJECTS[args.project], args.root, args.flavour)
    except PatchError as e:
        print(f"patcher: FAILED: {e}", file=sys.stderr)
        return 1
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    applied, already = report["transforms_applied"], report["transforms_already_applied"]
    if applied == 0 and already:
        summary = f"already patched: all {already} transforms were in place, nothing changed"
    else:
        summary = f"{applied} transforms applied, {already} already in place, {report['files_changed']} files changed"
    print(f"patcher: {args.project} ({report['flavour']}): {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
