"""Manage the model cache: list the registry, fetch (sha256-verified), verify, print paths.

The cache is $TEXTLESS_STACK_MODELS (else the XDG cache). On clusters, fetch on a login
node into a shared directory, then point compute jobs at it.
"""

from __future__ import annotations

import sys

NAME = "models"
HELP = "list, fetch, verify and locate registry models"


def add_arguments(p) -> None:
    p.add_argument("action", choices=["list", "fetch", "verify", "path"])
    p.add_argument("names", nargs="*", help="registry names (default for list/verify: all)")


def run(args) -> int:
    from .. import registry, store

    names = args.names or (list(registry.MODELS) if args.action in ("list", "verify") else [])
    if not names:
        print(f"textless-stack models {args.action}: name at least one model", file=sys.stderr)
        return 2
    for name in names:
        store.get(name)  # unknown names fail before any work
    problems = 0
    if args.action == "list":
        print(f"cache: {store.cache_dir()}")
        for name in names:
            m = registry.MODELS[name]
            detail = (f"layer {m.layer}, {16000 / m.hop:g} Hz frames" if m.kind == "dense"
                      else f"units of {m.dense}" if m.kind == "kmeans"
                      else f"speaks {registry.vocoder_kmeans(name)}" if m.kind in ("tacotron", "hifigan")
                      else f"LM over {m.kmeans or 'units this image cannot make'}" if m.kind == "ulm"
                      else "part of a vocoder set")
            note = f"  UNSUPPORTED: {m.unsupported}" if m.unsupported else ""
            print(f"{name:60s} {m.kind:16s} {detail:50s} {store.verify(name)}{note}")
    elif args.action == "fetch":
        for name in names:
            print(store.unpacked(name)[0] if registry.MODELS[name].kind == "ulm" else store.fetch(name))
    elif args.action == "verify":
        for name in names:
            state = store.verify(name)
            print(f"{name}: {state}")
            problems += state == "CORRUPT"
    else:
        for name in names:
            print(store.path_of(name))
    return 1 if problems else 0
