"""Provenance in every output (#16): OUTPUT/provenance.json's schema, shards and their disagreements, and
`verify`, which recomputes a sample from it: a tampered output is caught, another dtype is reported, a missing
input is one clear error."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from support import cli, features, write_tsv

from textless_stack import integrity, provenance


def units_job(corpus, out, tiny_hubert, tiny_kmeans, *extra):
    r = features(corpus, "-o", out, "--model", tiny_hubert, "--units", tiny_kmeans[0], "--device", "cpu", *extra)
    assert r.returncode == 0, r.stderr
    return out


def verify(out, *args):
    return cli("verify", out, "--device", "cpu", *args)


def test_an_output_records_its_job_models_environment_and_recipe(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans)
    record = json.loads((out / "provenance.json").read_text())
    assert record["schema"] == "textless-stack/provenance/1"
    assert record["job"] == json.loads((out / ".parts" / "job.json").read_text())  # one record of the job
    assert record["models"] == {"dense": integrity.sha256_file(tiny_hubert),
                                "kmeans": integrity.sha256_file(tiny_kmeans[0]), "vocoder": None}
    recipe = record["recipe"]
    assert recipe["inputs"] == [str(corpus)] and recipe["model"] == str(tiny_hubert) and recipe["layer"] == 2
    assert recipe["dtype"] == "fp32" and recipe["max_chunk"] > 0 and recipe["num_shards"] == 1
    (run,) = record["runs"]
    assert run["shard"] == "all_0_1" and run["files"] == 6 and "features" in run["command"] and str(out) in run["command"]
    import torch

    assert run["torch"] == torch.__version__ and run["device"] == "cpu" and run["cpu"]
    assert run["forward"]["dtype"] == "fp32" and run["forward"]["batch_seconds"] == 0
    assert run["forward"]["resampler"].startswith("soxr")
    image = run["image"]
    assert len(image["manifest_sha256"]) == 64 and len(image["pins_sha256"]) == 64
    assert set(image["patches_sha256"]) >= {"fairseq"}
    assert record["disagreements"] == {}


def test_a_resumed_shard_keeps_both_runs_and_merge_says_where_shards_disagree(tmp_path, corpus, tiny_hubert,
                                                                               tiny_kmeans):
    tsv = write_tsv(tmp_path / "train.tsv", corpus, ["a.wav", "b/c.wav", "b/d.flac", "g.wav"])
    out = tmp_path / "out"
    for i in range(2):
        r = features(tsv, "-o", out, "--model", tiny_hubert, "--units", tiny_kmeans[0], "--split", "train",
                     "--shard-index", i, "--num-shards", 2, "--device", "cpu")
        assert r.returncode == 0, r.stderr
    assert not (out / "provenance.json").exists()  # a sharded job's record is merge's
    # shard 1 reruns (nothing left to do) on "another machine": its record keeps both runs
    shard1 = out / ".parts" / "provenance" / "train_1_2.json"
    runs = json.loads(shard1.read_text())["runs"]
    runs[0]["gpu"], runs[0]["torch"] = "NVIDIA H100 80GB HBM3", "9.9.9"
    shard1.write_text(json.dumps({"runs": runs}))
    r = features(tsv, "-o", out, "--model", tiny_hubert, "--units", tiny_kmeans[0], "--split", "train",
                 "--shard-index", 1, "--num-shards", 2, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(shard1.read_text())["runs"]) == 2
    r = cli("merge", out)
    assert r.returncode == 0 and "provenance.json" in r.stdout, r.stderr
    record = provenance.read(out)
    assert [run["shard"] for run in record["runs"]] == ["train_0_2", "train_1_2", "train_1_2"]
    import torch

    assert record["disagreements"]["torch"] == {"train_0_2": torch.__version__,
                                                "train_1_2": ["9.9.9", torch.__version__]}
    assert record["disagreements"]["gpu"] == {"train_0_2": None, "train_1_2": ["NVIDIA H100 80GB HBM3", None]}
    assert "command" not in record["disagreements"] and "started" not in record["disagreements"]


def test_verify_reproduces_fp32_cpu_outputs_byte_for_byte(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans)
    r = verify(out, "--sample", 3, "--seed", 1, "--json", tmp_path / "v.json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["status"] == "pass" and report["tolerance"]["bytes_identical"] is True
    assert report["sample"] == {"files": 3, "of": 6, "seed": 1} and report["differs"] == []
    assert all(f["bytes_identical"] and f["max_abs_diff"] == 0 and f["unit_agreement"] == 1 for f in report["files"])
    assert "verify: PASS: 3 files reproduce (identical bytes)" in r.stdout
    again = verify(out, "--sample", 3, "--seed", 1, "--json", tmp_path / "v2.json")
    assert [f["key"] for f in json.loads((tmp_path / "v2.json").read_text())["files"]] == \
        [f["key"] for f in report["files"]], "the same seed picks the same files"


def test_verify_catches_a_tampered_output(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans)
    victim = out / "features" / "b" / "c.npy"
    original = np.load(victim)
    x = original.copy()
    x[3, 5] += 1e-3  # one value, well inside any plausibility check
    np.save(victim, x)
    r = verify(out, "--sample", 6)
    assert r.returncode == 1
    assert "verify: FAIL" in r.stdout and "b/c.wav: bytes differ (max |diff| 0.001)" in r.stdout, r.stdout
    units = out / "all_0_1.units.jsonl"
    lines = [json.loads(line) for line in units.read_text().splitlines()]
    lines[0]["units"] = [(u + 1) % 12 for u in lines[0]["units"]]
    units.write_text("".join(json.dumps(line) + "\n" for line in lines))
    np.save(victim, original)
    r = verify(out, "--sample", 6, "--json", tmp_path / "v.json")
    assert r.returncode == 1
    report = json.loads((tmp_path / "v.json").read_text())
    bad = {f["key"]: f for f in report["files"]}[lines[0]["path"]]
    assert bad["unit_agreement"] == 0 and bad["bytes_identical"] is False
    assert f"{lines[0]['path']}: unit agreement 0.00% < 99%" in report["failures"]


def test_verify_in_another_dtype_says_so_and_uses_that_dtypes_tolerance(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans)
    r = verify(out, "--sample", 2, "--dtype", "bf16", "--json", tmp_path / "v.json")
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["dtype"] == "bf16" and report["tolerance"]["bytes_identical"] is False
    assert report["tolerance"]["max_abs_diff"] == 0.5
    assert any(d.startswith("forward.dtype: \"fp32\" -> \"bf16\"") for d in report["differs"]), report["differs"]
    assert all(f["max_abs_diff"] > 0 for f in report["files"]), "bf16 cannot reproduce fp32 bytes"
    assert "forward.dtype" in r.stdout


def test_verify_names_a_missing_input_and_missing_provenance(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans)
    (corpus / "g.wav").unlink()
    r = verify(out, "--sample", 6)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
        f"textless-stack: error: g.wav (under {corpus}): an input of {out} is missing: it cannot be recomputed "
        "(--inputs says where the inputs are now)"), \
        r.stderr
    (out / "provenance.json").unlink()
    r = verify(out)
    assert r.returncode == 1 and f"{out / 'provenance.json'}: missing: no provenance for {out}" in r.stderr
    (out / "provenance.json").write_text("{")
    r = verify(out)
    assert r.returncode == 1 and f"{out / 'provenance.json'}: unreadable (JSONDecodeError" in r.stderr


def test_verify_of_a_copy_finds_inputs_and_models_where_the_reader_has_them(tmp_path, corpus, tiny_hubert,
                                                                              tiny_kmeans):
    """A paper's reader has the outputs, the audio and the models, at paths of their own."""
    import shutil
    author = tmp_path / "author"
    author.mkdir()
    model, km = shutil.copy(tiny_hubert, author / "model.pt"), shutil.copy(tiny_kmeans[0], author / "km.bin")
    out = units_job(corpus, author / "out", model, (km,))
    reader = tmp_path / "reader"
    shutil.copytree(corpus, reader / "audio")
    shutil.copytree(author, reader, dirs_exist_ok=True)
    shutil.rmtree(corpus)
    shutil.rmtree(author)
    r = verify(reader / "out", "--sample", 6)
    assert r.returncode == 1 and "(--inputs says where the inputs are now)" in r.stderr, r.stderr
    r = verify(reader / "out", "--sample", 6, "--inputs", reader / "audio", "--model", reader / "model.pt",
               "--units", reader / "km.bin", "--json", tmp_path / "v.json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "v.json").read_text())
    assert report["tolerance"]["bytes_identical"] and all(f["bytes_identical"] for f in report["files"])
    assert report["found_at"]["inputs"] == {"recorded": [str(corpus)], "here": [str(reader / "audio")]}
    assert report["found_at"]["model"]["here"] == str(reader / "model.pt")
    assert f"inputs found elsewhere: ['{corpus}'] -> ['{reader / 'audio'}']" in r.stdout
    # the files found must be the recorded ones: another model is refused by its digest, before any work
    (reader / "model.pt").write_bytes((reader / "model.pt").read_bytes() + b"\0")
    r = verify(reader / "out", "--inputs", reader / "audio", "--model", reader / "model.pt", "--units",
               reader / "km.bin")
    assert r.returncode == 1 and f"{reader / 'model.pt'}: sha256" in r.stderr and "not the recorded model" in r.stderr
    r = verify(reader / "out", "--inputs", reader / "audio", reader / "audio")
    assert r.returncode == 1 and f"--inputs: 2 given, but {reader / 'out'} was made from 1: {corpus}" in r.stderr


def test_verify_reads_a_fairseq_dump_by_its_rows(tmp_path, corpus, tiny_hubert):
    tsv = write_tsv(tmp_path / "train.tsv", corpus, ["a.wav", "b/c.wav", "g.wav"])
    out = tmp_path / "out"
    r = features(tsv, "-o", out, "--model", tiny_hubert, "--features", "dump", "--split", "train", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    r = verify(out, "--sample", 3, "--json", tmp_path / "v.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f["bytes_identical"] for f in json.loads((tmp_path / "v.json").read_text())["files"])
    dump = np.load(out / "train_0_1.npy")
    dump[-1, 0] += 1
    np.save(out / "train_0_1.npy", dump)
    r = verify(out, "--sample", 3)
    assert r.returncode == 1 and "g.wav: bytes differ" in r.stdout, r.stdout


def test_a_sif_is_identified_by_the_id_in_its_header(tmp_path):
    import uuid

    made = uuid.uuid4()
    sif = tmp_path / "x.sif"  # the global header's layout: launch script, magic, version, arch, then the ID
    sif.write_bytes(b"#!/usr/bin/env run-singularity\n\0" + b"SIF_MAGIC\0" + b"01\0" + b"02\0" + made.bytes + b"\0" * 64)
    assert provenance.sif_id(sif) == str(made)
    (tmp_path / "not.sif").write_bytes(b"\0" * 128)
    assert provenance.sif_id(tmp_path / "not.sif") is None and provenance.sif_id(tmp_path / "absent.sif") is None


def test_verify_of_deduplicated_units_only_compares_frames_and_fails_cleanly(tmp_path, corpus, tiny_hubert,
                                                                               tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans, "--features", "none", "--deduplicate")
    r = verify(out, "--sample", 6, "--json", tmp_path / "v.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(f["bytes_identical"] and f["max_abs_diff"] is None for f in json.loads((tmp_path / "v.json").read_text())["files"])
    units = out / "all_0_1.units.jsonl"
    lines = [json.loads(line) for line in units.read_text().splitlines()]
    lines[1]["units"][0] = (lines[1]["units"][0] + 1) % 12  # one run of frames changes its unit
    units.write_text("".join(json.dumps(line) + "\n" for line in lines))
    r = verify(out, "--sample", 6, "--json", tmp_path / "v.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    bad = {f["key"]: f for f in json.loads((tmp_path / "v.json").read_text())["files"]}[lines[1]["path"]]
    expected = 1 - lines[1]["durations"][0] / sum(lines[1]["durations"])
    assert bad["unit_agreement"] == pytest.approx(expected) and bad["bytes_identical"] is False
    assert f"{lines[1]['path']}: bytes differ; fp32 on CPU" in r.stdout


def test_files_that_shared_a_batch_are_held_to_the_tolerance_not_to_bytes(tmp_path, corpus, tiny_hubert,
                                                                          tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans, "--batch-seconds", "100")
    r = verify(out, "--sample", 2, "--json", tmp_path / "v.json")
    report = json.loads((tmp_path / "v.json").read_text())
    assert r.returncode == 0 and report["tolerance"]["bytes_identical"] is False, r.stdout
    assert all(f["max_abs_diff"] <= 1e-4 for f in report["files"])


def test_a_shard_an_older_version_began_is_marked_and_never_called_the_same_environment(tmp_path, corpus,
                                                                                         tiny_hubert, tiny_kmeans):
    out = units_job(corpus, tmp_path / "out", tiny_hubert, tiny_kmeans)
    import shutil

    shutil.rmtree(out / ".parts" / "provenance")  # what a textless-stack before provenance left
    (out / "provenance.json").unlink()
    units_job(corpus, out, tiny_hubert, tiny_kmeans)  # resumed: nothing left to do
    record = provenance.read(out)
    assert [bool(r.get("unrecorded")) for r in record["runs"]] == [True, False]
    assert "unrecorded" in record["disagreements"]
    r = verify(out, "--sample", 2, "--json", tmp_path / "v.json")
    report = json.loads((tmp_path / "v.json").read_text())
    assert r.returncode == 0 and report["tolerance"]["bytes_identical"] is False and report["differs"]
