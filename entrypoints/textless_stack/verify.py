"""`verify`: recompute a random sample of a `features` output from its provenance, in this environment.

Per file it reports the max |diff| of the features, the agreement of the units and whether the bytes are identical.
What must hold (precision.verify_tolerance): fp32 on CPU in the environment that wrote the outputs, identical bytes;
anywhere else, the tolerance of the dtype. Settings that differ from the recorded ones (another image, torch, GPU,
dtype) are listed, since they explain a difference.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import inputs, precision, provenance, store
from .errors import UserError
from .outputs import JobRecord

SCHEMA = "textless-stack/verify/1"
# What an environment is, for "is this the environment that wrote it": not the host, not the time.
_ENVIRONMENT = ("textless_stack", "python", "torch", "cuda", "cudnn", "device", "gpu", "driver", "cpu",
                "image.manifest_sha256", "image.sif.id", "image.pins_sha256", "forward.dtype", "forward.resampler")


class VerifyError(UserError):
    pass


@dataclass(frozen=True)
class VerifySpec:
    output: Path
    sample: int = 8
    seed: int = 0
    device: str = "auto"
    dtype: str | None = None            # default: the recorded one
    progress: bool = False
    # where the recorded inputs and model files are here, when not at the recorded paths (a reader's copy)
    inputs: tuple[str, ...] | None = None
    model: str | None = None
    units: str | None = None


def verify(spec: VerifySpec) -> dict:
    from .jobs import FeaturesSpec, features

    record = provenance.read(spec.output)
    job, recipe = record["job"], record["recipe"]
    if job.get("command") != "features":
        raise VerifyError(f"{spec.output}: a {job.get('command')} job: verify recomputes `features` outputs")
    if job.get("features") == "none" and not job.get("units"):
        raise VerifyError(f"{spec.output}: this job wrote neither features nor units: nothing to compare")
    if spec.sample < 1:
        raise VerifyError(f"--sample {spec.sample}: at least one file")
    layout_job = JobRecord(**job)
    here = _inputs_here(spec, recipe["inputs"])
    items = _collect(spec.output, here, "" if spec.inputs else " (--inputs says where the inputs are now)")
    recorded_units = _recorded_units(spec.output, layout_job)
    rows = _recorded_rows(spec.output, layout_job, items) if job["features"] == "dump" else None
    done = _recorded_keys(spec.output, layout_job, recorded_units, rows)
    if not done:
        raise VerifyError(f"{spec.output}: holds no finished file's outputs")
    chosen = sorted(random.Random(spec.seed).sample(range(len(done)), min(spec.sample, len(done))))
    by_stem = {_stem(i.key): i for i in items}
    sample = []
    for key in (done[i] for i in chosen):
        item = by_stem.get(_stem(key))
        if item is None or not item.path.is_file():
            where = item.path if item is not None else f"{key} (under {', '.join(here)})"
            raise VerifyError(f"{where}: an input of {spec.output} is missing: it cannot be recomputed"
                              + ("" if spec.inputs else " (--inputs says where the inputs are now)"))
        sample.append(item)
    model, units = spec.model or recipe["model"], spec.units or recipe["units"]
    if spec.units and not recipe["units"]:
        raise VerifyError(f"--units {spec.units}: {spec.output} was made without k-means units")
    _check_models(record, model, units)

    dtype = spec.dtype or recipe["dtype"]
    with tempfile.TemporaryDirectory(prefix="textless-verify.") as tmp:
        again = Path(tmp) / "out"
        features(FeaturesSpec(
            inputs=tuple(here), output=again, model=model, user_dir=recipe.get("user_dir"),
            layer=recipe["layer"], units=units, features="npy" if job["features"] != "none" else "none",
            save_dtype=recipe["save_dtype"], deduplicate=recipe["deduplicate"], f0=False,  # F0: not compared
            device=spec.device, dtype=dtype, max_chunk=recipe["max_chunk"], batch_seconds=recipe["batch_seconds"],
            shard_index=0, num_shards=1, progress=spec.progress, workers=0,
        ), only=frozenset(i.key for i in sample))
        now = provenance.read(again)
        new_job = JobRecord(**now["job"])
        new_units = _recorded_units(again, new_job)
        files = [_compare(item.key, _features(spec.output, layout_job, item.key, rows),
                          _features(again, new_job, item.key, None), recorded_units.get(item.key),
                          new_units.get(item.key)) for item in sample]
    differs = _differences(record["runs"], now["runs"][0])
    if record.get("unrecorded_shards"):
        differs.append(f"shards {', '.join(record['unrecorded_shards'])}: written with no provenance recorded")
    same_environment = not differs
    device = now["runs"][0]["device"]
    one_per_pass = all(r.get("forward", {}).get("batch_seconds") == 0 for r in [*record["runs"], *now["runs"]])
    tolerance = precision.verify_tolerance({dtype, recipe["dtype"]}, device, same_environment, one_per_pass)
    failures = []
    for f in files:
        if f.get("error"):
            failures.append(f"{f['key']}: {f['error']}")
            continue
        if tolerance["bytes_identical"] and not f["bytes_identical"]:
            diff = "" if f["max_abs_diff"] is None else f" (max |diff| {f['max_abs_diff']:.3g})"
            failures.append(f"{f['key']}: bytes differ{diff}; fp32 on CPU, one file per pass, in the environment "
                            "that wrote it must reproduce them exactly")
        elif f["max_abs_diff"] is not None and f["max_abs_diff"] > tolerance["max_abs_diff"]:
            failures.append(f"{f['key']}: max |diff| {f['max_abs_diff']:.3g} > {tolerance['max_abs_diff']:g}")
        if f["unit_agreement"] is not None and f["unit_agreement"] < tolerance["min_unit_agreement"]:
            failures.append(f"{f['key']}: unit agreement {f['unit_agreement']:.2%} < "
                            f"{tolerance['min_unit_agreement']:.0%}")
    return {"schema": SCHEMA, "output": str(spec.output), "status": "fail" if failures else "pass",
            "failures": failures, "sample": {"files": len(sample), "of": len(done), "seed": spec.seed},
            "dtype": dtype, "device": device, "tolerance": tolerance, "differs": differs, "files": files,
            "found_at": {what: {"recorded": rec, "here": now_} for what, rec, now_ in (
                ("inputs", recipe["inputs"], here), ("model", recipe["model"], model), ("units", recipe["units"], units))
                if rec != now_}}


def _inputs_here(spec: VerifySpec, recorded: list[str]) -> list[str]:
    """The recorded inputs, or where --inputs says they are now (one for each, in the recorded order)."""
    if not spec.inputs:
        return list(recorded)
    if len(spec.inputs) != len(recorded):
        raise VerifyError(f"--inputs: {len(spec.inputs)} given, but {spec.output} was made from {len(recorded)}: "
                          f"{', '.join(recorded)}")
    return [os.path.abspath(p) for p in spec.inputs]  # as `features` records them: links kept


def _collect(out: Path, specs: list[str], hint: str) -> list:
    found = []
    for one in specs:
        try:
            found += inputs.collect(one)
        except UserError as e:
            raise VerifyError(f"{out}: an input cannot be read: {e}{hint}") from None
    return found


def _check_models(record: dict, model: str, units: str | None) -> None:
    """The model files found here must be the recorded ones, byte for byte, wherever they are."""
    models = record["models"]
    for what, ref, digest in (("model", model, models["dense"]), ("k-means", units, models["kmeans"])):
        if ref is None:
            continue
        try:
            found = store.resolve(ref)
        except UserError as e:
            raise VerifyError(f"the recorded {what} cannot be had: {e}") from None
        if found.sha256 != digest:
            raise VerifyError(f"{found.path}: sha256 {found.sha256[:12]}…, but the outputs were made with "
                              f"{digest[:12]}…: not the recorded {what}")


def _recorded_units(out: Path, job: JobRecord) -> dict[str, list[int]]:
    if not job.units:
        return {}
    merged = job.layout(out, 0, nshard=1).units_jsonl
    sources = [merged] if merged.is_file() else [job.layout(out, r).units_jsonl for r in range(job.num_shards)]
    found = {}
    for path in sources:
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            try:
                rec = json.loads(line)
                # deduplicated: compared frame by frame, so that one flipped unit is one disagreement
                found[rec["path"]] = (np.repeat(rec["units"], rec["durations"]).tolist() if job.deduplicate
                                      else rec["units"])
            except (ValueError, KeyError, TypeError):
                raise VerifyError(f"{path}:{n}: not a units record") from None
    return found


def _stem(key: str) -> str:
    return str(Path(key).with_suffix(""))


def _recorded_keys(out: Path, job: JobRecord, units: dict, rows: dict | None) -> list[str]:
    """The files this directory holds outputs of, from the outputs themselves (not from today's inputs)."""
    if job.units:
        return sorted(units)
    if rows is not None:
        return sorted(rows)
    root = job.layout(out, 0).features_part("x").parent
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.npy"))


def _recorded_rows(out: Path, job: JobRecord, items: list) -> dict[str, np.ndarray]:
    """A fairseq dump's rows per key: each shard's finished files in input order, failed ones left out."""
    found = {}
    for rank in range(job.num_shards):
        layout = job.layout(out, rank)
        npy, lens = layout.dump
        if not npy.is_file() or not lens.is_file():
            continue
        failed = set()
        if layout.errors_jsonl.is_file():
            failed = {json.loads(line)["path"] for line in layout.errors_jsonl.read_text().splitlines() if line}
        keys = [i.key for i in inputs.shard(items, rank, job.num_shards) if i.key not in failed]
        counts = [int(n) for n in lens.read_text().split()]
        if len(counts) != len(keys):
            raise VerifyError(f"{lens}: {len(counts)} rows, but its inputs have {len(keys)} finished files: the "
                              "inputs changed since")
        data, offset = np.load(npy, mmap_mode="r"), 0
        for key, n in zip(keys, counts):
            found[key] = data[offset:offset + n]
            offset += n
    return found


def _features(out: Path, job: JobRecord, key: str, rows) -> np.ndarray | None:
    if job.features == "none":
        return None
    if rows is not None:
        return rows.get(key)
    path = job.layout(out, 0).features_part(key)
    return np.load(path) if path.is_file() else None


def _compare(key: str, old, new, old_units, new_units) -> dict:
    row: dict = {"key": key, "max_abs_diff": None, "unit_agreement": None, "bytes_identical": None}
    if old is not None or new is not None:
        if old is None or new is None or old.shape != new.shape:
            return {**row, "error": f"features of shape {None if old is None else list(old.shape)} recorded, "
                                    f"{None if new is None else list(new.shape)} now"}
        a, b = np.asarray(old), np.asarray(new)
        row["max_abs_diff"] = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0
        row["bytes_identical"] = a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if old_units is not None or new_units is not None:
        if old_units is None or new_units is None or len(old_units) != len(new_units):
            return {**row, "error": "units of another length recorded" if old_units and new_units else
                    "units missing on one side"}
        row["unit_agreement"] = float(np.mean(np.asarray(old_units) == np.asarray(new_units))) if old_units else 1.0
        row["bytes_identical"] = (row["bytes_identical"] is not False) and old_units == new_units
    return row


def _differences(recorded: list[dict], now: dict) -> list[str]:
    """'field: recorded -> now' for each environment field where this run differs from a recorded run."""
    flat_now, flat_recorded = provenance.flatten(now), [provenance.flatten(r) for r in recorded]
    found = []
    for field in _ENVIRONMENT:
        before = sorted({json.dumps(r.get(field)) for r in flat_recorded})
        after = json.dumps(flat_now.get(field))
        if before != [after]:
            found.append(f"{field}: {' / '.join(before)} -> {after}")
    return found


def markdown(report: dict) -> str:
    lines = [f"verify {report['output']}: {report['sample']['files']} of {report['sample']['of']} files "
             f"(seed {report['sample']['seed']}), {report['dtype']} on {report['device']}", "",
             "| file | max abs diff | unit agreement | bytes identical |", "| --- | --- | --- | --- |"]
    for f in report["files"]:
        diff = "-" if f["max_abs_diff"] is None else f"{f['max_abs_diff']:.3g}"
        agree = "-" if f["unit_agreement"] is None else f"{f['unit_agreement']:.2%}"
        lines.append(f"| {f['key']} | {diff} | {agree} | {f.get('error') or f['bytes_identical']} |")
    lines.append("")
    for what, where in report.get("found_at", {}).items():
        lines.append(f"{what} found elsewhere: {where['recorded']} -> {where['here']}")
    lines.append("differs from the recorded run: " + ("; ".join(report["differs"]) if report["differs"] else
                                                      "nothing (the same environment)"))
    return "\n".join(lines)


def verdict(report: dict) -> str:
    t = report["tolerance"]
    rule = "identical bytes" if t["bytes_identical"] else f"max |diff| <= {t['max_abs_diff']:g}"
    if report["status"] == "pass":
        return f"verify: PASS: {report['sample']['files']} files reproduce ({rule})"
    return f"verify: FAIL: {len(report['failures'])} problem(s): " + "; ".join(report["failures"][:5])
