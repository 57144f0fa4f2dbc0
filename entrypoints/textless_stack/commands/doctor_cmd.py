"""Explain this environment: Python, torch, CUDA and GPUs, the host driver against what this
torch build needs, the source patches (checked on disk against the manifest), stand-ins,
the model cache and whether every cache directory is writable.

Exit 0 when healthy, with one WARNING line for each thing that could not be verified (e.g. a
source built from a plain directory); 1 with one line per problem otherwise.
"""

from __future__ import annotations

NAME = "doctor"
HELP = "check the environment and say plainly what is wrong"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print the facts as JSON as well")


def run(args) -> int:
    import json

    from ..diagnose import diagnose

    facts, problems, warnings = diagnose()
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        print(json.dumps({"facts": facts, "problems": problems, "warnings": warnings}, indent=2))
    for warning in warnings:
        print(f"WARNING: {warning}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    status = "healthy" if not problems else f"{len(problems)} problem(s)"
    print(status + (f", {len(warnings)} warning(s)" if warnings else ""))
    return 1 if problems else 0
