"""The typed job API: specs from the command line, one job record for every command, one precision
policy, each model file hashed once per run, and commands that only parse and call."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

import textless_stack
import textless_stack.errors
from support import LAYER, cli
from textless_stack import integrity, jobs, outputs, precision
from textless_stack.cli import build_parser
from textless_stack.encoder import DenseEncoder
from textless_stack.loader import load_model

COMMANDS = Path(textless_stack.__file__).parent / "commands"


def test_a_spec_from_the_command_line_equals_the_typed_one(tmp_path):
    args = build_parser().parse_args(["features", "a", "b.tsv", "-o", str(tmp_path), "--units", "km", "--dtype",
                                      "bf16", "--layer", "3", "--no-progress", "--num-shards", "4"])
    assert jobs.FeaturesSpec.from_namespace(args) == jobs.FeaturesSpec(
        inputs=("a", "b.tsv"), output=tmp_path, units="km", dtype="bf16", layer=3, progress=False, num_shards=4)
    args = build_parser().parse_args(["resynth", "a", "-o", str(tmp_path), "--vocoder", "v.json", "--seed", "5"])
    spec = jobs.ResynthSpec.from_namespace(args)
    assert spec == jobs.ResynthSpec(inputs=("a",), output=tmp_path, vocoder="v.json", seed=5)
    assert spec.features == "none"


def test_commands_import_no_other_command():
    names = {p.stem for p in COMMANDS.glob("*_cmd.py")}
    for path in COMMANDS.glob("*_cmd.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported |= {(node.module or "").split(".")[-1], *(a.name for a in node.names)}
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[-1] for a in node.names}
        assert not (imported & names) - {path.stem}, f"{path.name} imports another command"


def test_the_features_job_runs_from_a_typed_spec(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    out = tmp_path / "out"
    summary = jobs.features(jobs.FeaturesSpec(inputs=(str(corpus),), output=out, model=str(tiny_hubert),
                                              units=str(tiny_kmeans[0]), layer=int(LAYER), progress=False))
    assert (summary.files, summary.failed) == (6, 0)
    record = outputs.JobRecord.read(out)
    assert record.command == "features" and record.units and not record.wav
    assert record.model_sha256 == integrity.sha256_file(tiny_hubert)
    assert record.units_sha256 == integrity.sha256_file(tiny_kmeans[0])


def test_each_model_file_is_hashed_once_per_run(tmp_path, corpus, tiny_hubert, tiny_kmeans, monkeypatch):
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    jobs.features(jobs.FeaturesSpec(inputs=(str(corpus),), output=tmp_path / "out", model=str(tiny_hubert),
                                    units=str(tiny_kmeans[0]), layer=int(LAYER), progress=False))
    assert sorted(hashed) == sorted([tiny_hubert.name, tiny_kmeans[0].name])


def test_a_resynth_job_record_is_merged(tmp_path):
    """The record `resynth` writes (no features, wav per file, optional units) is one `merge` reads."""
    out = tmp_path / "out"
    record = outputs.JobRecord(
        command="resynth", model_sha256="0" * 64, layer=2, dtype="fp32", max_chunk=1600000, units_sha256="1" * 64,
        deduplicate=False, split="all", num_shards=2, features="none", save_dtype="float32", units=True, wav=True,
        vocoder={"files": {"model": "2" * 64}, "speaker": 0, "style": 0, "sample_rate": 16000, "seed": 0,
                 "max_decoder_steps": 2000, "denoiser_strength": 0.1})
    for rank, key in enumerate(["a.wav", "b.wav"]):
        layout = record.layout(out, rank)
        layout.claim(record)
        outputs.save_json(layout.units_part(key), {"path": key, "units": [rank, 1]})
        outputs.save_wav(layout.wav_part(key), torch.zeros(160).numpy(), 16000)
        layout.assemble([key])
    r = cli("merge", out)
    assert r.returncode == 0, r.stderr
    assert "2 shards" in r.stdout and "2 files (2 done, 0 failed)" in r.stdout
    assert [json.loads(x)["path"] for x in (out / "all_0_1.units.jsonl").read_text().splitlines()] == ["a.wav", "b.wav"]
    assert not (out / "all_0_1.npy").exists()


def test_a_record_of_another_job_is_refused_naming_what_differs(tmp_path):
    base = dict(command="features", model_sha256="0" * 64, layer=2, dtype="fp32", max_chunk=1, units_sha256=None,
                deduplicate=False, split="all", num_shards=1, features="npy", save_dtype="float32", units=False,
                wav=False)
    layout = outputs.Layout(tmp_path, "npy", False, "all", 0, 1)
    layout.claim(outputs.JobRecord(**base))
    layout.claim(outputs.JobRecord(**base))  # the same job resumes
    with pytest.raises(outputs.OutputError, match=r"different job \(dtype, layer differ\)"):
        layout.claim(outputs.JobRecord(**{**base, "layer": 1, "dtype": "bf16"}))
    assert json.loads((tmp_path / ".parts" / "job.json").read_text()) == asdict(outputs.JobRecord(**base))


@pytest.mark.parametrize("device,dtype,cast,autocast,own,seconds", [
    ("cpu", "fp32", False, False, False, 0.0), ("cpu", "bf16", True, False, True, 12.0),
    ("cpu", "fp16", True, False, False, 0.0), ("cuda", "fp32", False, False, False, 400.0),
    ("cuda", "fp16", False, True, False, 400.0), ("cuda", "bf16", False, True, False, 400.0)])
def test_the_precision_policy(device, dtype, cast, autocast, own, seconds):
    p = precision.policy(device, dtype)
    assert (p.cast_weights, p.autocast, p.own_forward, p.batch_seconds) == (cast, autocast, own, seconds)


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_the_encoder_follows_the_policy(tiny_hubert, dtype):
    enc = DenseEncoder(load_model(tiny_hubert).model, 2, False, torch.device("cpu"), dtype)
    p = precision.policy("cpu", dtype)
    assert enc.precision == p
    assert next(enc.model.parameters()).dtype == (p.torch_dtype if p.cast_weights else torch.float32)
    assert (enc.cpu_forward is not None) == p.own_forward


def test_help_states_the_policy_it_runs():
    said = dict(part.rsplit(" ", 1) for part in precision.batch_help().replace(" = one file per pass", "").split("; "))
    stated = {name: float(seconds) for names, seconds in said.items() for name in names.split("/")}
    assert stated == {f"{d} {t}": precision.policy(d, t).batch_seconds for d in ("cuda", "cpu") for t in precision.DTYPES}
    r = cli("features", "--help")
    assert " ".join(precision.batch_help().split()) in " ".join(r.stdout.split())


def test_a_record_of_the_previous_version_is_resumed(tmp_path):
    """Outputs of a run interrupted before an upgrade stay resumable: its `features` record is read as one."""
    old = dict(model_sha256="0" * 64, layer=2, dtype="fp32", max_chunk=1, units_sha256="1" * 64, deduplicate=False,
               split="all", num_shards=1, features="dump", save_dtype="float32")
    outputs.save_json(tmp_path / ".parts" / "job.json", old)
    record = outputs.JobRecord.read(tmp_path)
    assert record == outputs.JobRecord(command="features", units=True, wav=False, **old)
    outputs.save_json(tmp_path / ".parts" / "job.json", {"something": "else"})
    with pytest.raises(outputs.OutputError, match="not a job record"):
        outputs.JobRecord.read(tmp_path)


def test_a_record_without_frame_hop_is_resumed_and_then_says_it(tmp_path):
    old = dict(command="features", model_sha256="0" * 64, layer=2, dtype="fp32", max_chunk=1, units_sha256=None,
               deduplicate=False, split="all", num_shards=1, features="npy", save_dtype="float32", units=False,
               wav=False)
    outputs.save_json(tmp_path / ".parts" / "job.json", old)
    layout = outputs.Layout(tmp_path, "npy", False, "all", 0, 1)
    layout.claim(outputs.JobRecord(**old, frame_hop=640))
    assert outputs.JobRecord.read(tmp_path).frame_hop == 640
    with pytest.raises(outputs.OutputError, match=r"different job \(frame_hop differ\)"):
        layout.claim(outputs.JobRecord(**old, frame_hop=320))
    outputs.save_json(tmp_path / ".parts" / "job.json", old)
    with pytest.raises(outputs.OutputError, match=r"different job \(layer differ\)"):  # frame_hop is no news
        layout.claim(outputs.JobRecord(**{**old, "layer": 3}, frame_hop=640))
    streams = {"separator": ",", "preserve_name": True}
    layout.claim(outputs.JobRecord(**old, frame_hop=640, streams=streams))  # derived files: no new job
    assert outputs.JobRecord.read(tmp_path).streams == streams


def test_specs_refuse_what_the_command_line_would(tmp_path):
    with pytest.raises(textless_stack.errors.UserError, match="dtype 'fp64'"):
        jobs.FeaturesSpec(inputs=("a",), output=tmp_path, dtype="fp64")
    with pytest.raises(textless_stack.errors.UserError, match="features 'npy'"):
        jobs.ResynthSpec(inputs=("a",), output=tmp_path, vocoder="v.json", features="npy")
    with pytest.raises(textless_stack.errors.UserError, match="non-empty sequence"):
        jobs.FeaturesSpec(inputs="a", output=tmp_path)
