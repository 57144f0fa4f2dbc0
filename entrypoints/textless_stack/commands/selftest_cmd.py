"""Prove, inside an image, that the stack works end to end without network or models: a generated tiny
HuBERT through the strict loader, batched features against the per-file reference, the bf16 CPU forward
against fairseq's, a broken file failing alone (the checks: textless_stack.testing.selftest). Writes only
under a temporary directory.
"""

from __future__ import annotations

NAME = "selftest"
HELP = "end-to-end checks with a generated tiny model (used by the images' tests)"


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from ..testing.selftest import checks

    results = checks()
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1
