"""Explain this environment: Python, torch, CUDA and GPUs, the host driver against what this
torch build needs, the source patches (checked on disk against the manifest), stand-ins,
the model cache and whether every cache directory is writable.

Exit 0 when healthy; 1 with one line per problem otherwise.
"""

from __future__ import annotations

NAME = "doctor"
HELP = "check the environment and say plainly what is wrong"


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print the facts as JSON as well")


def run(args) -> int:
    import json

    from ..diagnose import diagnose

    facts, problems = diagnose()
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        print(json.dumps({"facts": facts, "problems": problems}, indent=2))
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("healthy" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0
