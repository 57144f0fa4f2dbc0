"""The checks behind `textless-stack doctor`: facts to show, problems (each one line, with advice), and
warnings: what could not be verified, though the environment may well be right."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

CACHE_VARS = ("XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME", "NUMBA_CACHE_DIR", "MPLCONFIGDIR", "TEXTLESS_CHECKPOINT_ROOT")


def manifest_path() -> Path:
    return Path(os.environ.get("TEXTLESS_STACK_MANIFEST") or Path(sys.prefix) / "textless-stack-sources.json")


def sbom_path() -> Path:
    return Path(os.environ.get("TEXTLESS_STACK_SBOM") or manifest_path().parent / "sbom.cdx.json")


def _sbom(facts, problems) -> None:
    path = sbom_path()
    if path.is_file():
        facts["sbom"] = f"{path} (CycloneDX)"
    elif os.environ.get("TEXTLESS_STACK_SBOM"):
        problems.append(f"{path}: the SBOM this image names is missing")
    else:
        facts["sbom"] = "none in this environment (the images carry one at /opt/textless-stack/sbom.cdx.json)"


def diagnose() -> tuple[dict, list[str], list[str]]:
    """(facts, problems, warnings)."""
    facts: dict[str, str] = {}
    problems: list[str] = []
    warnings: list[str] = []
    facts["python"] = f"{platform.python_version()} ({sys.executable})"
    _torch(facts, problems)
    manifest = _manifest(facts, problems, warnings)
    if manifest:
        _patches(manifest, facts, problems)
    _sbom(facts, problems)
    _caches(facts, problems)
    _models(facts)
    return facts, problems, warnings


def _torch(facts, problems) -> None:
    try:
        import torch
    except Exception as e:  # a broken install is exactly what doctor is for
        problems.append(f"torch does not import: {e}")
        return
    facts["torch"] = f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'})"
    driver = host_driver()
    facts["nvidia driver"] = driver or "none visible (no GPU passed in: docker --gpus all / apptainer --nv)"
    needed = os.environ.get("TEXTLESS_STACK_MIN_DRIVER") or _variant_min_driver()
    if driver and needed and _version(driver) < _version(needed):
        problems.append(f"host NVIDIA driver {driver} is older than {needed}, which this torch build (CUDA "
                        f"{torch.version.cuda}) needs: upgrade the driver, or use an image variant for an older CUDA")
    try:
        count = torch.cuda.device_count()
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(count))
        facts["gpus"] = f"{count} ({names})" if count else "0: features run on CPU"
    except Exception as e:
        facts["gpus"] = "error"
        problems.append(f"CUDA is present but unusable: {str(e).splitlines()[0]}")
    if driver and not torch.cuda.is_available():
        problems.append("an NVIDIA driver is visible but torch sees no GPU: check CUDA_VISIBLE_DEVICES and --gpus/--nv")


def host_driver() -> str | None:
    proc = Path("/proc/driver/nvidia/version")
    if proc.exists():
        m = re.search(r"Kernel Module\s+([\d.]+)", proc.read_text())
        if m:
            return m.group(1)
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.split()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _version(text: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _variant_min_driver() -> str | None:
    try:
        return json.loads(manifest_path().read_text()).get("variant", {}).get("min_driver")
    except (OSError, ValueError):
        return None


def _manifest(facts, problems, warnings) -> dict | None:
    path = manifest_path()
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problems.append(f"no build manifest at {path} ({type(e).__name__}): cannot tell what this environment is")
        return None
    facts["manifest"] = str(path)
    if "variant" in manifest:
        facts["variant"] = f"{manifest['variant']['name']}: {manifest['variant'].get('description', '')}"
    for project, record in manifest.get("sources", {}).items():
        kind = record.get("kind")
        what = record.get("package") or (record.get("commit") or "")[:12] or "-"
        facts[f"source {project}"] = f"{kind} {what}" + ("  (STAND-IN)" if record.get("standin") else "")
        if record.get("commit") and not record.get("commit_verified"):
            # a plain directory (FAIRSEQ_SRC / TEXTLESSLIB_SRC) is recorded at the pinned commit it claims to be
            origin = "local directory: " if kind == "local-dir" else ""
            facts[f"source {project}"] += f"  ({origin}commit NOT verified)"
            warnings.append(f"{project}: the {kind} source is recorded as commit {record['commit'][:12]}, but that was "
                            f"not verified; for a verified build set {project.upper()}_SRC to a git checkout holding it")
    base = manifest.get("base_image")
    if base:
        facts["base image"] = base["ref"] + ("  (STAND-IN for the pinned digest)" if base.get("standin") else "")
    if manifest.get("standins_used"):
        facts["stand-ins"] = ", ".join(manifest["standins_used"]) + " (built without registry/git access)"
    return manifest


def _patches(manifest, facts, problems) -> None:
    """Each patched file on disk must still be what the patcher wrote (sha256 from the report)."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    roots = {"fairseq": purelib, "hydra": purelib, "textlesslib": purelib}
    for project, report in manifest.get("patches", {}).items():
        checked = mismatched = 0
        for entry in report["files"]:
            rel = entry["path"]
            if project == "textlesslib" and not rel.startswith("textless/"):
                continue  # setup.py / requirements.txt are not installed
            path = roots[project] / rel
            if not path.exists():
                continue  # examples/ are not part of the installed package
            checked += 1
            if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256_after"]:
                mismatched += 1
                problems.append(f"{project}: {rel} differs from what the patcher wrote: the install was modified")
        applied = report["transforms_applied"] + report["transforms_already_applied"]
        facts[f"patches {project}"] = f"{applied} transforms ({report['flavour']}), {checked - mismatched}/{checked} files verified"
    if "fairseq" not in manifest.get("patches", {}):
        problems.append("the manifest records no fairseq patch report")


def _caches(facts, problems) -> None:
    from .store import cache_dir

    dirs = {v: os.environ[v] for v in CACHE_VARS if os.environ.get(v)}
    dirs["models (TEXTLESS_STACK_MODELS)"] = str(cache_dir())
    bad = []
    for name, d in dirs.items():
        try:
            Path(d).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d):
                pass
        except OSError as e:
            bad.append(name)
            problems.append(f"cache {name}={d} is not writable ({e.strerror}): bind a writable directory there "
                            "or point the variable at one (e.g. under /tmp or scratch)")
    facts["caches"] = f"{len(dirs) - len(bad)}/{len(dirs)} writable"


def _models(facts) -> None:
    from . import registry
    from .store import cache_dir

    from .store import baked_path

    present = [m.name for m in registry.MODELS.values()
               if (cache_dir() / m.fname).exists() or baked_path(m.name) is not None]
    facts["model cache"] = f"{cache_dir()}: {len(present)} of {len(registry.MODELS)} registry models present" + (
        f" ({', '.join(present)})" if present else "; fetch with `textless-stack models fetch NAME`")
