"""Where a run's provenance is recorded: OUTPUT/provenance.json, one record per output directory.

Schema `textless-stack/provenance/1` (README, "Reproducing a paper run"):
  job      the job's identity (outputs.JobRecord, the same fields as .parts/job.json): what the outputs are
  recipe   what `verify` re-runs: the inputs, model and k-means as given, and every setting that changes results
  models   the sha256 of every model file used (dense, kmeans, vocoder)
  runs     one entry per process that wrote into the directory (a resumed shard adds one): its shard, command
           line, start time, the environment (image, pins and patch digests, textless-stack, torch, CUDA, driver,
           GPU, CPU) and the forward it used (precision policy, batch and chunk)
  disagreements  {field: {shard: value}} for each field the runs do not agree on (another torch, GPU, image...)

Each shard keeps its runs in .parts/provenance/STEM.json (only its own process writes it); provenance.json is
assembled from those when a single-shard job finishes, and by `merge` for a sharded one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path

from . import __version__, outputs
from .errors import UserError

SCHEMA = "textless-stack/provenance/1"
FILE = "provenance.json"
# Per run and expected to vary between shards: never a disagreement.
_PER_RUN = ("shard", "files", "command", "started", "host", "pid")


class ProvenanceError(UserError):
    """An output directory's provenance is missing or unreadable; the message names the file."""


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def image() -> dict:
    """What this environment is: its build manifest's digest always; the SIF's own ID inside Apptainer."""
    from .diagnose import manifest_path

    path = manifest_path()
    found: dict = {"manifest": str(path)}
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as e:
        found["manifest_error"] = f"{type(e).__name__}: {e}"
        return found
    found["manifest_sha256"] = hashlib.sha256(raw).hexdigest()
    found["revision"] = manifest.get("revision")
    found["variant"] = (manifest.get("variant") or {}).get("name")
    found["pins_sha256"] = _digest(manifest.get("pins"))
    found["patches_sha256"] = {name: _digest(report) for name, report in sorted((manifest.get("patches") or {}).items())}
    found["sources"] = {name: s.get("commit") or s.get("package") or s.get("kind")
                        for name, s in sorted((manifest.get("sources") or {}).items())}
    sif = os.environ.get("APPTAINER_CONTAINER") or os.environ.get("SINGULARITY_CONTAINER")
    if sif:  # the file is often out of reach inside (--containall): its build date identifies it there
        found["sif"] = {"path": sif, "id": sif_id(Path(sif)), "build_date": _sif_label("org.label-schema.build-date")}
    if Path("/.dockerenv").exists():
        found["container"] = "docker"
    return found


def sif_id(path: Path) -> str | None:
    """The UUID a SIF's global header carries (set when it is built): identifies the file without hashing GBs."""
    try:
        with open(path, "rb") as f:
            header = f.read(64)
    except OSError:
        return None
    if header[32:41] != b"SIF_MAGIC":
        return None
    h = header[48:64].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _sif_label(name: str) -> str | None:
    try:
        return json.loads(Path("/.singularity.d/labels.json").read_text()).get(name)
    except (OSError, ValueError, AttributeError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device) -> dict:
    """This process's software and hardware, as far as they change numbers."""
    import torch

    from .diagnose import host_driver

    cuda = getattr(device, "type", str(device)) == "cuda"
    return {
        "textless_stack": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": getattr(device, "type", str(device)),
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "driver": host_driver() if cuda else None,
        "cpu": _cpu_model(),
        "image": image(),
    }


def run_record(stem: str, files: int, device, forward: dict, recipe: dict, models: dict) -> dict:
    return {"shard": stem, "files": files, "command": shlex.join(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": socket.gethostname(), "pid": os.getpid(), **environment(device), "forward": forward,
            "recipe": recipe, "models": models}


def _shard_path(out: Path, stem: str) -> Path:
    return out / outputs.PARTS / "provenance" / f"{stem}.json"


def begin(out: Path, stem: str) -> bool:
    """Before the job record is claimed: whether a textless-stack that recorded no provenance already wrote into
    this shard. The directory for the records is made first, so a job record written since always has it beside."""
    parts = out / outputs.PARTS
    legacy = ((parts / "job.json").is_file() and not (parts / "provenance").is_dir()) or (
        (out / f"{stem}.done.json").is_file() and not _shard_path(out, stem).is_file())
    with outputs.disk_errors(parts):
        (parts / "provenance").mkdir(parents=True, exist_ok=True)
    return legacy


def add_run(out: Path, run: dict, after_unrecorded: bool = False) -> None:
    """Append this process's run to its shard's record (a resumed shard keeps every run that wrote into it).
    after_unrecorded: an earlier, unrecorded run wrote into it; a placeholder says so, and differs from every run."""
    path = _shard_path(out, run["shard"])
    runs = _read(path)["runs"] if path.is_file() else []
    if after_unrecorded and not runs:
        runs = [{"shard": run["shard"], "unrecorded": "a textless-stack that recorded no provenance wrote here"}]
    outputs.save_json(path, {"runs": [*runs, run]})


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProvenanceError(f"{path}: missing") from None
    except (OSError, ValueError) as e:
        raise ProvenanceError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ProvenanceError(f"{path}: not a JSON object")
    return data


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested fields dotted: {"image": {"sif": {"id": x}}} -> {"image.sif.id": x}."""
    flat = {}
    for k, v in record.items():
        if isinstance(v, dict) and v:
            flat.update(flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def disagreements(runs: list[dict]) -> dict:
    """{field: {shard: value}} for every field on which the runs differ (nested fields dotted: image.sif.id)."""
    flat = [(r["shard"], flatten({k: v for k, v in r.items() if k not in _PER_RUN})) for r in runs]
    fields = sorted({k for _, f in flat for k in f})
    found = {}
    for field in fields:
        values = {json.dumps(f.get(field), sort_keys=True) for _, f in flat}
        if len(values) > 1:
            by_shard: dict = {}
            for shard, f in flat:
                by_shard.setdefault(shard, [])
                if f.get(field) not in by_shard[shard]:
                    by_shard[shard].append(f.get(field))
            found[field] = {s: v[0] if len(v) == 1 else v for s, v in by_shard.items()}
    return found


def assemble(out: Path, job: outputs.JobRecord) -> dict:
    """provenance.json from the shards' records: every shard must have one."""
    stems = [job.layout(out, rank).stem for rank in range(job.num_shards)]
    unrecorded = [stem for stem in stems if not _shard_path(out, stem).is_file()]
    runs = [run for stem in stems if stem not in unrecorded for run in _read(_shard_path(out, stem)).get("runs", [])]
    if not runs:
        raise ProvenanceError(f"{out}: no shard recorded a run in {out / outputs.PARTS / 'provenance'}")
    recorded = next(r for r in runs if "recipe" in r)
    record = {"schema": SCHEMA, "job": asdict(job), "recipe": recorded["recipe"], "models": recorded["models"],
              "runs": runs, "disagreements": disagreements(runs)}
    if unrecorded:  # written by a textless-stack from before provenance
        record["unrecorded_shards"] = unrecorded
    outputs.save_json(out / FILE, record)
    return record


def read(out: Path) -> dict:
    path = out / FILE
    if not path.is_file():
        hint = (" (a sharded job's record is written by `textless-stack merge`)"
                if (out / outputs.PARTS / "provenance").is_dir() else
                " (written by textless-stack features/resynth since provenance was recorded)")
        raise ProvenanceError(f"{path}: missing: no provenance for {out}{hint}")
    record = _read(path)
    if record.get("schema") != SCHEMA:
        raise ProvenanceError(f"{path}: schema {record.get('schema')!r}, not {SCHEMA!r}")
    for key in ("job", "recipe", "models", "runs"):
        if key not in record:
            raise ProvenanceError(f"{path}: no {key!r}: not a complete provenance record")
    return record
