"""Read env/pins.toml and derive everything that depends on it.

Stdlib only (tomllib, or tomli on Python 3.10), so it runs before any
environment exists: the Makefile, the Docker build and the tests all call it.

    python env/pins.py get sources.fairseq.commit
    python env/pins.py lock-input runtime-cu124  # lock input, one `name==version` per line
    python env/pins.py make-vars                 # Makefile include (PIN_*)
    python env/pins.py build-args cu124          # the image's pinned build args, one `NAME=value` per line
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PINS_FILE = Path(__file__).resolve().with_name("pins.toml")
LOCK_DIR = PINS_FILE.parent / "locks"

# Variant fields that are facts about it, not packages to install
VARIANT_META = {"cuda", "min_driver", "description"}


def variants(pins: dict) -> list[str]:
    return [k for k, v in pins["variants"].items() if isinstance(v, dict)]


def default_variant(pins: dict) -> str:
    return pins["variants"]["default"]


def lock_names(pins: dict) -> list[str]:
    """runtime-<variant> for every image variant, then dev (constrained by the default variant's lock), then
    export-check (the plain modern environment exports must load in), then sbom (the image's SBOM tool)."""
    return [f"runtime-{v}" for v in variants(pins)] + ["dev", "export-check", "sbom"]


def lock_python(pins: dict, lock: str) -> str:
    """The Python a lock is resolved for: the stack's, except for the export check's modern environment."""
    return pins["export_check"]["python"] if lock == "export-check" else pins["python"]["version"]


def load(path: Path = PINS_FILE) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def get(pins: dict, dotted: str):
    node = pins
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"{dotted!r} is not in {PINS_FILE.name}")
        node = node[part]
    return node


def requirements(pins: dict, lock: str) -> list[str]:
    """The direct requirements of one lock, as `name==version` lines."""
    if lock == "dev":
        packages = dict(pins["dev"])
    elif lock == "export-check":
        packages = dict(pins["export_check"]["packages"])
    elif lock == "sbom":
        packages = dict(pins["sbom"])
    else:
        variant = pins["variants"][lock.removeprefix("runtime-")]
        packages = {**pins["runtime"], **{k: v for k, v in variant.items() if k not in VARIANT_META}}
    return [f"{name}=={version}" for name, version in packages.items()]


def variant_packages(pins: dict, variant: str) -> dict:
    return {k: v for k, v in pins["variants"][variant].items() if k not in VARIANT_META}


def lock_input(pins: dict, lock: str) -> str:
    return "\n".join(requirements(pins, lock)) + "\n"


def input_digest(pins: dict, lock: str) -> str:
    """Recorded in each lock's header; a different value means the lock is stale."""
    return hashlib.sha256(lock_input(pins, lock).encode()).hexdigest()


def locked_versions(lock_text: str) -> dict[str, str]:
    """`name==version` lines of a uv-generated lock, names normalised."""
    found = {}
    for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", lock_text, re.M):
        found[normalise(m.group(1))] = m.group(2)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_pythons(pins: dict) -> dict[str, list[str]]:
    """Python version -> requirements of its small check environment."""
    cfg = pins["check_pythons"]
    out = {}
    for version in cfg["versions"]:
        overrides = cfg.get("overrides", {}).get(version, {})
        known = {**pins["runtime"], **variant_packages(pins, default_variant(pins))}
        out[version] = [f"{p}=={overrides.get(p, known[p])}" for p in cfg["packages"]]
    return out


def make_vars(pins: dict) -> str:
    """Makefile variables, so the Makefile never writes a version itself."""
    values = {
        "PIN_PYTHON": pins["python"]["version"],
        "PIN_PLATFORM": pins["python"]["platform"],
        "PIN_UV": pins["tools"]["uv"],
        "PIN_BASE_IMAGE": pins["base_image"]["ref"],
        "PIN_FAIRSEQ_GIT": pins["sources"]["fairseq"]["git"],
        "PIN_FAIRSEQ_COMMIT": pins["sources"]["fairseq"]["commit"],
        "PIN_TEXTLESSLIB_GIT": pins["sources"]["textlesslib"]["git"],
        "PIN_TEXTLESSLIB_COMMIT": pins["sources"]["textlesslib"]["commit"],
        "PIN_CHECK_PYTHONS": " ".join(pins["check_pythons"]["versions"]),
        "PIN_EXPORT_CHECK_PYTHON": pins["export_check"]["python"],
        "PIN_VARIANTS": " ".join(variants(pins)),
        "PIN_DEFAULT_VARIANT": default_variant(pins),
    }
    return "".join(f"{k} := {v}\n" for k, v in values.items())


def build_args(pins: dict, variant: str) -> dict[str, str]:
    """The Docker build arguments that come from the pins (docker/build.sh adds the per-build facts:
    stand-in base, revision, models to bake). BASE_IMAGE is the pinned ref."""
    if variant not in variants(pins):
        raise KeyError(f"no variant {variant!r} in {PINS_FILE.name} (have: {', '.join(variants(pins))})")
    meta = pins["variants"][variant]
    return {
        "VARIANT": variant,
        "BASE_IMAGE": pins["base_image"]["ref"],
        "UV_VERSION": pins["tools"]["uv"],
        "TOMLI_VERSION": pins["runtime"]["tomli"],
        "FAIRSEQ_COMMIT": pins["sources"]["fairseq"]["commit"],
        "TEXTLESSLIB_COMMIT": pins["sources"]["textlesslib"]["commit"],
        "TORCH_VERSION": meta["torch"],
        "MIN_DRIVER": meta["min_driver"],
    }


def build_constraints(pins: dict) -> str:
    return "".join(f"{name}=={version}\n" for name, version in pins["build"].items())


def main(argv: list[str]) -> int:
    pins = load()
    if len(argv) == 2 and argv[0] == "get":
        value = get(pins, argv[1])
        print(" ".join(value) if isinstance(value, list) else value)
    elif len(argv) == 2 and argv[0] == "lock-input":
        sys.stdout.write(lock_input(pins, argv[1]))
    elif len(argv) == 2 and argv[0] == "digest":
        print(input_digest(pins, argv[1]))
    elif len(argv) == 2 and argv[0] == "check-requirements":
        print("\n".join(check_pythons(pins)[argv[1]]))
    elif argv == ["make-vars"]:
        sys.stdout.write(make_vars(pins))
    elif len(argv) == 2 and argv[0] == "build-args":
        sys.stdout.write("".join(f"{k}={v}\n" for k, v in build_args(pins, argv[1]).items()))
    elif argv == ["build-constraints"]:
        sys.stdout.write(build_constraints(pins))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
