"""Is a rebuild the same build? Inventory an image's files; compare two inventories.

    python - inventory < env/repro.py > a.json           inside an image or SIF (its own Python, stdlib only)
    python3 env/repro.py compare a.json b.json [--json REPORT]    on the host; exit 1 if the scope differs

The scope that must be identical is the Python environment and our installed files (SCOPE). Everything
else on the filesystem is compared too and reported, but does not fail the check: the base image's own
files and what the engines inject are not ours to make reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys

SCOPE = ("/opt/venv", "/opt/textless-stack")
# pseudo filesystems, scratch, and what Docker and Apptainer bind into every container
SKIP = ("/proc", "/sys", "/dev", "/tmp", "/var/tmp", "/run", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
        "/.dockerenv")
MANIFEST = "/opt/textless-stack/manifest.json"
PATCH_REPORTS = ("/opt/textless-stack/hydra-patch-report.json",)


def _entry(path: str) -> str:
    """One line per path: type, permission bits, owner, and the content hash or link target."""
    st = os.lstat(path)
    head = f"{oct(stat.S_IMODE(st.st_mode))[2:]} {st.st_uid}:{st.st_gid}"
    if stat.S_ISLNK(st.st_mode):
        return f"l {head} -> {os.readlink(path)}"
    if stat.S_ISDIR(st.st_mode):
        return f"d {head}"
    if not stat.S_ISREG(st.st_mode):
        return f"s {head}"
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as e:
        return f"f {head} unreadable ({e.strerror})"
    return f"f {head} {digest.hexdigest()}"


def _skipped(path: str) -> bool:
    return any(path == s or path.startswith(s + "/") for s in SKIP)


def inventory(root: str = "/") -> dict:
    """Every path under root, named as seen from inside (root is "/" in an image; a tree in the tests)."""
    files = {}

    def inside(path: str) -> str:
        rel = os.path.relpath(path, root)
        return "/" if rel == "." else "/" + rel

    for top, dirs, names in os.walk(root, onerror=lambda e: files.__setitem__(inside(e.filename),
                                                                              f"? {e.strerror}")):
        dirs[:] = sorted(d for d in dirs if not _skipped(inside(os.path.join(top, d))))
        for name in sorted(names) + dirs:
            path = os.path.join(top, name)
            if not _skipped(inside(path)):
                files[inside(path)] = _entry(path)
    return {"files": files, "freeze": _freeze(), "manifest": _json(os.path.join(root, MANIFEST[1:])),
            "patch_reports": {p: _json(os.path.join(root, p[1:])) for p in PATCH_REPORTS}}


def _freeze() -> list[str]:
    """name==version of the environment running this, as `pip freeze` lists it."""
    from importlib import metadata
    return sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())


def _json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def in_scope(path: str) -> bool:
    return any(path == s or path.startswith(s + "/") for s in SCOPE)


def _dict_diff(a, b, prefix="") -> list[str]:
    """Dotted keys whose values differ (a manifest or patch report, read as JSON)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _dict_diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if a == b else [prefix or "(whole)"]


def compare(a: dict, b: dict) -> dict:
    fa, fb = a["files"], b["files"]
    differ = sorted(p for p in set(fa) | set(fb) if fa.get(p) != fb.get(p))
    report = {
        "scope": list(SCOPE),
        "compared": sum(1 for p in set(fa) | set(fb) if in_scope(p)),
        "differ": [{"path": p, "a": fa.get(p, "(absent)"), "b": fb.get(p, "(absent)")} for p in differ if in_scope(p)],
        "outside_scope": [{"path": p, "a": fa.get(p, "(absent)"), "b": fb.get(p, "(absent)")}
                          for p in differ if not in_scope(p)],
        "freeze": {"a_only": sorted(set(a["freeze"]) - set(b["freeze"])),
                   "b_only": sorted(set(b["freeze"]) - set(a["freeze"])), "packages": len(a["freeze"])},
        "manifest": _dict_diff(a["manifest"], b["manifest"]),
        "patch_reports": {p: _dict_diff(a["patch_reports"].get(p), b["patch_reports"].get(p))
                          for p in sorted(set(a["patch_reports"]) | set(b["patch_reports"]))},
    }
    report["identical"] = not (report["differ"] or report["freeze"]["a_only"] or report["freeze"]["b_only"]
                               or report["manifest"] or any(report["patch_reports"].values())
                               or a["manifest"] is None)
    return report


def render(report: dict, label_a: str, label_b: str, show: int = 30) -> str:
    lines = [f"repro: {label_a}  vs  {label_b}"]
    n = len(report["differ"])
    lines.append(f"  files in {', '.join(report['scope'])}: {report['compared']} compared by content, {n} differ")
    for d in report["differ"][:show]:
        lines.append(f"    {d['path']}\n      a: {d['a']}\n      b: {d['b']}")
    if n > show:
        lines.append(f"    ... and {n - show} more (the --json report lists them all)")
    fr = report["freeze"]
    lines.append(f"  pip freeze: {fr['packages']} packages, "
                 + ("identical" if not (fr["a_only"] or fr["b_only"]) else f"a only {fr['a_only']}, b only {fr['b_only']}"))
    for path, keys in report["patch_reports"].items():
        lines.append(f"  patch report {path}: " + ("identical" if not keys else f"differs at {', '.join(keys)}"))
    lines.append("  manifest (patch reports of fairseq and textlesslib included): "
                 + ("identical" if not report["manifest"] else f"differs at {', '.join(report['manifest'])}"))
    out = report["outside_scope"]
    lines.append(f"  outside that scope (reported, not checked): {len(out)} paths differ"
                 + (": " + ", ".join(d["path"] for d in out[:10]) + (" ..." if len(out) > 10 else "") if out else ""))
    lines.append("  result: " + ("IDENTICAL" if report["identical"] else "DIFFERENT"))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    inv = sub.add_parser("inventory", help="print this filesystem's inventory as JSON")
    inv.add_argument("root", nargs="?", default="/")
    cmp_ = sub.add_parser("compare", help="compare two inventories; exit 1 if the scope differs")
    cmp_.add_argument("a")
    cmp_.add_argument("b")
    cmp_.add_argument("--labels", nargs=2, metavar=("A", "B"), help="what a and b are, for the printout")
    cmp_.add_argument("--json", help="write the whole report here")
    args = parser.parse_args(argv)
    if args.command == "inventory":
        json.dump(inventory(args.root), sys.stdout, sort_keys=True)
        return 0
    loaded = []
    for path in (args.a, args.b):
        try:
            with open(path) as f:
                loaded.append(json.load(f))
        except (OSError, ValueError) as e:
            print(f"repro: cannot read the inventory {path}: {e}", file=sys.stderr)
            return 2
    report = compare(*loaded)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(render(report, *(args.labels or (args.a, args.b))))
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
