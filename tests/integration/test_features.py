"""`textless-stack features`: every input form, output form, sharding, resume after SIGKILL, bad input, parity."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from textless_stack import audio
from textless_stack.encoder import DenseEncoder
from textless_stack.testing.reference import reference_features
from textless_stack.loader import load_model

from support import LAYER, cli, features, files_under, write_audio, write_tsv


def reference(tiny_hubert, path, layer=2, max_chunk=None):
    loaded = load_model(tiny_hubert)
    kwargs = {"max_chunk": max_chunk} if max_chunk else {}
    return reference_features(loaded.model, audio.load(path), layer, False, **kwargs).numpy()


def read_units(out):
    (path,) = out.glob("*.units.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- parity -----------------------------------------------------------------------------


def test_batched_equals_per_file_reference_and_units_equal_sklearn(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    km_path, km = tiny_kmeans
    out = tmp_path / "out"
    r = features(corpus, "-o", out, "--model", tiny_hubert, "--units", km_path, "--batch-seconds", "60")
    assert r.returncode == 0, r.stderr
    records = {rec["path"]: rec for rec in read_units(out)}
    assert len(records) == 6
    for rel in records:
        got = np.load(out / "features" / (os.path.splitext(rel)[0] + ".npy"))
        ref = reference(tiny_hubert, corpus / rel)
        assert got.shape == ref.shape and got.dtype == np.float32
        assert np.abs(got - ref).max() <= 1e-4, rel
        assert records[rel]["units"] == km.predict(got).tolist()
        assert records[rel]["units"] == km.predict(ref).tolist(), "units identical to the unbatched reference"


def test_long_files_are_chunked_like_textlesslib(tmp_path, tiny_hubert):
    root = tmp_path / "long"
    write_audio(root, {"long.wav": 2.3})
    out = tmp_path / "out"
    r = features(root, "-o", out, "--model", tiny_hubert, "--max-chunk", "16000")
    assert r.returncode == 0, r.stderr
    got = np.load(out / "features" / "long.npy")
    ref = reference(tiny_hubert, root / "long.wav", max_chunk=16000)
    assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4

    # a file's chunks are joined in the saved dtype: float16 is the float32 result rounded, nothing else
    out16 = tmp_path / "out16"
    r = features(root, "-o", out16, "--model", tiny_hubert, "--max-chunk", "16000", "--save-dtype", "float16")
    assert r.returncode == 0, r.stderr
    half = np.load(out16 / "features" / "long.npy")
    assert half.dtype == np.float16 and half.tobytes() == got.astype(np.float16).tobytes()


def test_resampling_and_downmix(tmp_path, tiny_hubert):
    root = tmp_path / "r"
    write_audio(root, {"x_stereo.wav": 1.0})
    data, rate = sf.read(root / "x_stereo.wav", dtype="float32")
    wav = audio.load(root / "x_stereo.wav")
    assert rate == 22050 and data.shape[1] == 2
    assert abs(wav.numel() - 16000) <= 1
    import soxr

    expected = soxr.resample(np.ascontiguousarray(data.mean(1)), 22050, 16000, quality="HQ")
    assert torch.equal(wav, torch.from_numpy(expected))
    assert audio.resampler() == f"soxr {soxr.__version__} HQ"


# --- input forms --------------------------------------------------------------------------


def test_input_forms_give_the_same_features(tmp_path, corpus, tiny_hubert):
    rels = ["a.wav", "b/c.wav", "g.wav"]
    manifest = write_tsv(tmp_path / "train.tsv", corpus, rels)
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text("".join(json.dumps({"path": str(corpus / r), "speaker": i}) + "\n" for i, r in enumerate(rels)))
    results = {}
    for form, spec in {"tsv": manifest, "jsonl": jsonl, "glob": f"{corpus}/**/*.wav", "dir": corpus}.items():
        out = tmp_path / form
        r = features(spec, "-o", out, "--model", tiny_hubert)
        assert r.returncode == 0, (form, r.stderr)
        results[form] = {p.relative_to(out).as_posix(): np.load(p) for p in sorted(out.rglob("*.npy"))}
    assert set(results["tsv"]) == {"features/a.npy", "features/b/c.npy", "features/g.npy"}
    assert set(results["tsv"]) <= set(results["glob"])  # ** globs mirror the tree below the literal part
    assert set(results["glob"]) <= set(results["dir"])
    jsonl_by_name = {k.split(str(corpus).lstrip("/") + "/", 1)[1]: v for k, v in results["jsonl"].items()}
    for key, value in results["tsv"].items():
        assert np.array_equal(results["glob"][key], value)
        assert np.array_equal(results["dir"][key], value)
        assert np.array_equal(jsonl_by_name[key.removeprefix("features/")], value)


def test_jsonl_extra_fields_are_carried_into_units(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"path": "corpus/a.wav", "speaker": "s1", "style": "happy"}) + "\n")
    out = tmp_path / "out"
    r = features(jsonl, "-o", out, "--model", tiny_hubert, "--units", tiny_kmeans[0], "--features", "none",
                 "--deduplicate")
    assert r.returncode == 0, r.stderr
    (record,) = read_units(out)
    assert record["speaker"] == "s1" and record["style"] == "happy" and record["path"] == "corpus/a.wav"
    assert sum(record["durations"]) == reference(tiny_hubert, corpus / "a.wav").shape[0]
    assert all(a != b for a, b in zip(record["units"], record["units"][1:]))
    assert not (out / "features").exists()


# --- outputs: fairseq dump format ---------------------------------------------------------


def test_fairseq_dump_format_and_shards_concatenate_to_the_whole(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    rels = files_under(corpus)
    manifest = write_tsv(tmp_path / "train.tsv", corpus, rels)
    whole = tmp_path / "whole"
    assert features(manifest, "-o", whole, "--model", tiny_hubert, "--features", "dump", "--split", "train",
                    "--units", tiny_kmeans[0]).returncode == 0
    feats, lens = np.load(whole / "train_0_1.npy"), [int(x) for x in (whole / "train_0_1.len").read_text().split()]
    assert feats.shape[0] == sum(lens) and len(lens) == len(rels)
    sharded = tmp_path / "sharded"
    for i in range(3):  # SLURM array defaults
        r = features(manifest, "-o", sharded, "--model", tiny_hubert, "--features", "dump", "--split", "train",
                     "--units", tiny_kmeans[0],
                     env={"SLURM_ARRAY_TASK_ID": str(i + 5), "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"})
        assert r.returncode == 0, r.stderr
    parts = [np.load(sharded / f"train_{i}_3.npy") for i in range(3)]
    assert all(p.shape[0] > 0 for p in parts)
    assert np.array_equal(np.concatenate(parts), feats)
    shard_lens = [int(x) for i in range(3) for x in (sharded / f"train_{i}_3.len").read_text().split()]
    assert shard_lens == lens
    units = [line for i in range(3) for line in (sharded / f"train_{i}_3.units.jsonl").read_text().splitlines()]
    assert units == (whole / "train_0_1.units.jsonl").read_text().splitlines()
    assert [json.loads(u)["path"] for u in units] == rels


# --- bad input ----------------------------------------------------------------------------


def test_bad_files_fail_alone_with_exit_2(tmp_path, corpus, tiny_hubert):
    (corpus / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (corpus / "text.flac").write_text("this is not audio\n")
    (corpus / "empty.wav").write_bytes(b"")
    sf.write(corpus / "zero.wav", np.zeros(0, np.float32), 16000)
    sf.write(corpus / "tiny.wav", np.zeros(300, np.float32), 16000)
    unreadable = corpus / "locked.wav"
    sf.write(unreadable, np.zeros(16000, np.float32), 16000)
    unreadable.chmod(0)
    out = tmp_path / "out"
    r = features(corpus, "-o", out, "--model", tiny_hubert)
    assert r.returncode == 2, r.stderr
    errors = {json.loads(x)["path"]: json.loads(x)["error"] for x in (out / "all_0_1.errors.jsonl").read_text().splitlines()}
    expected_bad = {"corrupt.wav", "text.flac", "empty.wav", "zero.wav", "tiny.wav"}
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        expected_bad.add("locked.wav")
    assert expected_bad <= set(errors)
    assert "receptive field" in errors["tiny.wav"] and "empty" in errors["zero.wav"]
    for bad in expected_bad:
        assert bad.split(".")[0] in r.stderr  # in the log too
        assert not (out / "features" / (bad.rsplit(".", 1)[0] + ".npy")).exists()
    extracted = 6 + (os.geteuid() == 0)
    assert len(list((out / "features").rglob("*.npy"))) == extracted
    assert f"{extracted} extracted" in r.stdout and f"{12 - extracted} failed" in r.stdout
    assert not list(out.rglob("*.tmp"))


def test_offline_model_error_names_file_and_command(tmp_path, corpus):
    r = features(corpus, "-o", tmp_path / "o", "--model", "hubert-base-ls960",
                 env={"TEXTLESS_STACK_MODELS": str(tmp_path / "cache"), "TEXTLESS_STACK_OFFLINE": "1"})
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert "hubert_base_ls960.pt" in line and "textless-stack models fetch hubert-base-ls960" in line


def test_mhubert_25hz_is_a_usable_registry_model(tmp_path, corpus):
    r = features(corpus, "-o", tmp_path / "o", "--model", "mhubert-base-25hz",
                 env={"TEXTLESS_STACK_MODELS": str(tmp_path / "cache"), "TEXTLESS_STACK_OFFLINE": "1"})
    assert r.returncode == 1 and "models fetch mhubert-base-25hz" in r.stderr and "cannot be loaded" not in r.stderr


def test_colliding_outputs_are_refused(tmp_path, tiny_hubert):
    root = tmp_path / "c"
    write_audio(root, {"x.wav": 0.5, "x.flac": 0.5})
    r = features(root, "-o", tmp_path / "o", "--model", tiny_hubert)
    assert r.returncode == 1 and "same outputs" in r.stderr


# --- resume -------------------------------------------------------------------------------


def test_resume_after_sigkill_is_complete_and_exact(tmp_path, tiny_hubert):
    root = tmp_path / "many"
    write_audio(root, {f"f{i:02d}.wav": 4.0 + (i % 5) for i in range(24)})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "textless_stack.cli", "features", str(root), "-o", str(out), "--model",
           str(tiny_hubert), "--layer", LAYER, "--no-progress", "--features", "dump"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / ".parts").rglob("*.npy"))) < 5:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / ".parts").rglob("*.npy")))
    assert 5 <= done_before < 24, "killed mid-run"
    assert not (out / "all_0_1.npy").exists()
    stale = out / ".parts" / "features" / ".f23.npy.left-by-a-kill.tmp"  # what a kill mid-write leaves
    stale.write_bytes(b"partial")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{done_before} already done" in r.stdout or f"{done_before + 1} already done" in r.stdout
    clean = tmp_path / "clean"
    r2 = subprocess.run(cmd[:6] + [str(clean)] + cmd[7:], capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0
    assert np.array_equal(np.load(out / "all_0_1.npy"), np.load(clean / "all_0_1.npy"))
    assert (out / "all_0_1.len").read_text() == (clean / "all_0_1.len").read_text()
    assert not stale.exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_rerun_of_a_finished_job_does_nothing(tmp_path, corpus, tiny_hubert):
    out = tmp_path / "out"
    assert features(corpus, "-o", out, "--model", tiny_hubert).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (out / "features").rglob("*.npy")}
    r = features(corpus, "-o", out, "--model", tiny_hubert)
    assert r.returncode == 0 and "6 already done" in r.stdout
    assert before == {p: p.stat().st_mtime_ns for p in (out / "features").rglob("*.npy")}


def test_a_different_job_is_not_resumed_into_old_outputs(tmp_path, corpus, tiny_hubert):
    out = tmp_path / "out"
    assert features(corpus, "-o", out, "--model", tiny_hubert).returncode == 0
    before = np.load(out / "features" / "a.npy")
    r = cli("features", corpus, "-o", out, "--model", tiny_hubert, "--layer", "1", "--no-progress")
    assert r.returncode == 1 and "different job" in r.stderr and "layer" in r.stderr
    assert np.array_equal(np.load(out / "features" / "a.npy"), before)


# --- dtype --------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["0", "3"])
def test_a_layer_the_model_lacks_is_refused(tmp_path, corpus, tiny_hubert, layer):
    r = cli("features", corpus, "-o", tmp_path / "out", "--model", tiny_hubert, "--layer", layer, "--no-progress")
    assert r.returncode == 1 and f"--layer {layer}" in r.stderr and "layers 1..2" in r.stderr
    assert not (tmp_path / "out" / "features").exists()


def test_bf16_on_cpu_from_the_command_line(tmp_path, corpus, tiny_hubert):
    out = tmp_path / "out"
    r = features(corpus, "-o", out, "--model", tiny_hubert, "--dtype", "bf16", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    log = r.stdout + r.stderr
    assert "cpu bf16, batch 12 s" in log and "textless-stack's forward" in log
    for rel in ("a.wav", "b/c.wav", "g.wav"):
        got = np.load(out / "features" / (os.path.splitext(rel)[0] + ".npy"))
        ref = reference(tiny_hubert, corpus / rel)
        assert got.shape == ref.shape and got.dtype == np.float32
        cos = torch.nn.functional.cosine_similarity(torch.from_numpy(got), torch.from_numpy(ref), dim=1)
        assert cos.min() > 0.99, rel


def test_bf16_on_cpu_stays_close(tmp_path, corpus, tiny_hubert):
    enc = DenseEncoder(load_model(tiny_hubert).model, 2, False, torch.device("cpu"), "bf16")
    assert next(enc.model.parameters()).dtype == torch.bfloat16  # CPU casts the weights
    wav = audio.load(corpus / "g.wav")
    (got,) = enc.encode(enc.chunks(wav))
    ref = reference_features(load_model(tiny_hubert).model, wav, 2, False)
    cos = torch.nn.functional.cosine_similarity(got, ref, dim=1)
    assert cos.min() > 0.99


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_units_assigned_for_the_whole_padded_batch_equal_sklearn_per_file(corpus, tiny_hubert, tiny_kmeans, dtype):
    """encode_units assigns the k-means on the device for the padded batch at once (no per-file sync);
    the valid frames of each file get the units sklearn gives that file's own features."""
    from textless_stack.kmeans import Quantizer

    path, km = tiny_kmeans
    enc = DenseEncoder(load_model(tiny_hubert).model, 2, False, torch.device("cpu"), dtype)
    rows = [enc.chunks(audio.load(corpus / rel))[0] for rel in ("a.wav", "b/c.wav", "b/d.flac", "g.wav")]
    feats, units = enc.encode_units(rows, Quantizer(km.cluster_centers_, torch.device("cpu")))
    assert [len(u) for u in units] == [len(f) for f in feats] == [enc.geometry.frames(r.numel()) for r in rows]
    for f, u in zip(feats, units):
        assert u.tolist() == km.predict(f.numpy()).tolist()
    assert len({int(x) for u in units for x in u}) > 1
