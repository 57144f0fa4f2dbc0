"""Shared-cluster hardening (#18): readable outputs, clear per-file errors, and nothing lost on a full disk,
SIGTERM, a racing second process or a vanished input directory. Each test drives the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from support import LAYER, features, write_audio

ROOT = os.geteuid() == 0


def features_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "textless_stack.cli", "features", *map(str, args), "--layer", LAYER, "--no-progress"]


def regular_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and not p.is_symlink()]


def no_temp_files(out: Path) -> None:
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], "a temp file was left behind"


def same_outputs(a: Path, b: Path) -> None:
    """Every product of a run (features, dump, units, errors) equal to a clean run's."""
    names = sorted(p.relative_to(a) for p in regular_files(a) if ".parts" not in p.parts and not p.name.endswith(".lock"))
    assert names == sorted(p.relative_to(b) for p in regular_files(b)
                           if ".parts" not in p.parts and not p.name.endswith(".lock"))
    for rel in names:
        if rel.suffix == ".npy":
            assert np.array_equal(np.load(a / rel), np.load(b / rel)), rel
        elif rel.name.endswith(".done.json"):
            assert json.loads((a / rel).read_text()) == json.loads((b / rel).read_text())
        elif rel.name == "provenance.json":  # each run's own command line, pid and time; the job itself equal
            x, y = json.loads((a / rel).read_text()), json.loads((b / rel).read_text())
            assert [x["job"], x["recipe"]["dtype"], x["models"]] == [y["job"], y["recipe"]["dtype"], y["models"]]
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


N_MANY = 60  # enough work that a run is still going when a test interrupts it, even on a busy machine


@pytest.fixture
def many(tmp_path):
    root = tmp_path / "many"
    write_audio(root, {f"f{i:02d}.wav": 3.0 + (i % 4) for i in range(N_MANY)})
    return root


# --- outputs others can read --------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tmp_path, corpus, tiny_hubert, tiny_kmeans, umask):
    (corpus / "broken.wav").write_bytes(b"not audio")  # so an errors JSONL is written too
    for form in ("npy", "dump"):
        out = tmp_path / form
        r = subprocess.run(features_cmd(corpus, "-o", out, "--model", tiny_hubert, "--units", tiny_kmeans[0],
                                        "--features", form),
                           capture_output=True, text=True, timeout=600, preexec_fn=lambda: os.umask(umask))
        assert r.returncode == 2, r.stderr
        files = regular_files(out)
        kinds = {p.name.split(".", 1)[-1] for p in files}
        assert {"units.jsonl", "errors.jsonl", "done.json"} <= kinds
        assert ("npy" in kinds and "len" in kinds) if form == "dump" else "npy" in kinds
        wrong = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
                 if stat.S_IMODE(p.stat().st_mode) != 0o666 & ~umask}
        assert not wrong, f"not {oct(0o666 & ~umask)} under umask {oct(umask)}: {wrong}"


# --- every fault of a file is a listed, counted error that says what happened ---------------


def read_errors(out: Path) -> dict:
    (path,) = out.glob("*.errors.jsonl")
    return {r["path"]: r["error"] for r in map(json.loads, path.read_text().splitlines())}


def test_broken_symlinks_in_a_directory_are_listed_and_counted(tmp_path, corpus, tiny_hubert):
    (corpus / "dangling.wav").symlink_to(tmp_path / "nowhere.wav")
    (corpus / "loop.wav").symlink_to(corpus / "loop.wav")
    (corpus / "good_link.wav").symlink_to(corpus / "a.wav")
    out = tmp_path / "out"
    r = features(corpus, "-o", out, "--model", tiny_hubert)
    assert r.returncode == 2, r.stderr
    assert "9 files (7 extracted, 0 already done, 2 failed)" in r.stdout
    errors = read_errors(out)
    assert set(errors) == {"dangling.wav", "loop.wav"}
    assert errors["dangling.wav"].startswith("broken symbolic link") and "nowhere.wav" in errors["dangling.wav"]
    assert "symbolic link loop" in errors["loop.wav"]
    assert (out / "features" / "good_link.npy").is_file()


def test_a_glob_of_only_broken_symlinks_fails_loudly(tmp_path, tiny_hubert):
    d = tmp_path / "d"
    d.mkdir()
    (d / "x.wav").symlink_to(tmp_path / "gone.wav")
    (d / "y.wav").symlink_to(d / "y.wav")
    out = tmp_path / "out"
    r = features(str(d / "*.wav"), "-o", out, "--model", tiny_hubert)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "2 files (0 extracted, 0 already done, 2 failed)" in r.stdout
    assert set(read_errors(out)) == {"x.wav", "y.wav"}


def test_a_manifest_entry_that_is_missing_says_no_such_file(tmp_path, corpus, tiny_hubert):
    manifest = tmp_path / "train.tsv"
    manifest.write_text(f"{corpus}\na.wav\t19200\nmissing.wav\t16000\n")
    out = tmp_path / "out"
    r = features(manifest, "-o", out, "--model", tiny_hubert)
    assert r.returncode == 2
    assert read_errors(out) == {"missing.wav": f"no such file: {corpus / 'missing.wav'}"}
    assert "System error" not in r.stderr


def as_user(cmd: list[str]) -> list[str]:
    """Root reads and writes every file whatever its mode: drop the capabilities that let it, as a cluster
    user has none of them."""
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cmd] if ROOT else cmd


def test_an_unreadable_file_says_permission_denied(tmp_path, tiny_hubert):
    corpus = tmp_path / "corpus"
    write_audio(corpus, {"ok.wav": 1.0, "secret.wav": 1.0})
    (corpus / "secret.wav").chmod(0)
    out = tmp_path / "out"
    r = subprocess.run(as_user(features_cmd(corpus, "-o", out, "--model", tiny_hubert)), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 2, r.stderr
    assert read_errors(out) == {"secret.wav": f"permission denied: {corpus / 'secret.wav'}"}


def test_conversions_are_counted_in_the_summary(tmp_path, corpus, tiny_hubert):
    import soundfile as sf

    sf.write(corpus / "h44k.wav", np.zeros(44100, np.float32) + 0.1, 44100)
    r = features(corpus, "-o", tmp_path / "out", "--model", tiny_hubert)
    assert r.returncode == 0, r.stderr
    assert "2 resampled to 16000 Hz (1 from 22050 Hz, 1 from 44100 Hz); 1 downmixed to mono" in r.stdout
    r = features(corpus, "-o", tmp_path / "out", "--model", tiny_hubert)  # nothing decoded: nothing to say
    assert "resampled" not in r.stdout and "downmixed" not in r.stdout


# --- faults of the run: full disk, SIGTERM, a second process, vanished directories -----------


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of a given size at tmp_path/fs (root only: CI runs as root)."""
    if not ROOT:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    mounted = []

    def make(size: str):
        opts = f"size={size}" + (",remount" if mounted else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount)], check=True)
        mounted.append(size)
        return mount

    yield make
    if mounted:
        subprocess.run(["umount", str(mount)], check=True)


def tmpfs_bytes(root: Path) -> int:
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in regular_files(root))


@pytest.mark.parametrize("form", ["npy", "dump"])
def test_a_full_disk_is_one_clear_error_and_a_rerun_completes(tmp_path, many, tiny_hubert, small_fs, form):
    """npy: the disk fills while files are written; dump: every part fits, the assembled dump does not."""
    clean = tmp_path / "clean"
    assert features(many, "-o", clean, "--model", tiny_hubert, "--features", form).returncode == 0
    if form == "npy":
        size = tmpfs_bytes(clean) // 3
    else:
        dump = (clean / "all_0_1.npy").stat().st_size  # everything else fits, and half of the dump
        size = tmpfs_bytes(clean) - -(-dump // 4096) * 4096 + dump // 2
    fs = small_fs(f"{size // 4096 * 4}k")
    out = fs / "out"
    r = features(many, "-o", out, "--model", tiny_hubert, "--features", form)
    assert r.returncode == 1, (r.stdout, r.stderr)
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("textless-stack: error:")]
    assert f"{out}" in line and "no space left on device" in line
    assert "Traceback" not in r.stderr
    no_temp_files(out)
    assert not list(out.glob("*.done.json"))
    parts = list(out.rglob("*.npy"))
    if form == "npy":
        assert 0 < len(parts) < N_MANY, "files finished before the disk filled are kept"
    else:
        assert len(parts) == N_MANY and not (out / "all_0_1.npy").exists(), "it failed assembling the dump"
    for p in parts:  # nothing half-written: every file there is whole
        assert np.load(p).shape[1] == 32
    small_fs("32m")
    r = features(many, "-o", out, "--model", tiny_hubert, "--features", form)
    assert r.returncode == 0, r.stderr
    same_outputs(out, clean)


def test_sigterm_stops_promptly_keeps_finished_files_and_a_rerun_completes(tmp_path, many, tiny_hubert):
    out = tmp_path / "out"
    cmd = features_cmd(many, "-o", out, "--model", tiny_hubert, "--features", "dump")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list((out / ".parts").rglob("*.npy"))) >= 3)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.time() - sent < 10, "stopped promptly"
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "terminated by SIGTERM" in stderr and "files finished and kept" in stderr
    assert "Traceback" not in stderr
    kept = list((out / ".parts").rglob("*.npy"))
    assert 3 <= len(kept) < N_MANY
    for p in kept:
        assert np.load(p).shape[1] == 32
    no_temp_files(out)
    assert not (out / "all_0_1.done.json").exists() and not (out / "all_0_1.npy").exists()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(kept)} already done" in r.stdout
    clean = tmp_path / "clean"
    assert features(many, "-o", clean, "--model", tiny_hubert, "--features", "dump").returncode == 0
    same_outputs(out, clean)


def test_a_second_process_on_the_same_shard_is_refused_naming_the_holder(tmp_path, many, tiny_hubert):
    out = tmp_path / "out"
    cmd = features_cmd(many, "-o", out, "--model", tiny_hubert, "--features", "dump")
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / ".parts" / "all_0_1.lock"
    try:
        wait_for(lambda: lock.is_file() and f"pid {first.pid} " in lock.read_text())
        first.send_signal(signal.SIGSTOP)  # holds its shard, mid-run, for as long as the test needs
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert second.returncode == 1, second.stderr
        assert "shard all_0_1 is being written by" in second.stderr and f"pid {first.pid} " in second.stderr
        first.send_signal(signal.SIGKILL)  # a lock of a killed process must not block
        first.wait()
    finally:
        first.kill()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    clean = tmp_path / "clean"
    assert features(many, "-o", clean, "--model", tiny_hubert, "--features", "dump").returncode == 0
    same_outputs(out, clean)


def test_other_shards_of_one_output_directory_run_side_by_side(tmp_path, corpus, tiny_hubert):
    out = tmp_path / "out"
    procs = [subprocess.Popen(features_cmd(corpus, "-o", out, "--model", tiny_hubert, "--features", "dump",
                                           "--shard-index", i, "--num-shards", 2),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err


def test_an_unwritable_output_directory_is_one_clear_error_up_front(tmp_path, corpus):
    out = tmp_path / "locked"
    out.mkdir(mode=0o555)
    r = subprocess.run(as_user(features_cmd(corpus, "-o", out, "--model", tmp_path / "absent-model.pt")),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"textless-stack: error: {out}: permission denied: cannot write there; make it writable or choose "
        "another --output (finished files are kept)")
    assert "Traceback" not in r.stderr
    assert "absent-model" not in r.stderr, "refused before the model is even looked at"


def test_an_input_directory_that_disappears_mid_run_is_one_error(tmp_path, many, tiny_hubert):
    out = tmp_path / "out"
    cmd = features_cmd(many, "-o", out, "--model", tiny_hubert)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list((out / "features").rglob("*.npy"))) >= 2 if (out / "features").is_dir() else False)
    away = tmp_path / "unmounted"
    many.rename(away)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, (stdout, stderr)
    assert stderr.strip().splitlines()[-1].startswith(
        f"textless-stack: error: {many}: the input directory disappeared during the run")
    assert "Traceback" not in stderr
    assert not list(out.glob("*.errors.jsonl")) and not list((out / ".parts").glob("errors/*"))
    away.rename(many)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and f"{N_MANY} files" in r.stdout, r.stderr


def test_an_input_directory_that_is_gone_up_front_is_one_error(tmp_path, tiny_hubert):
    r = features(tmp_path / "gone", "-o", tmp_path / "out", "--model", tiny_hubert)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"textless-stack: error: {tmp_path / 'gone'}: no such file or directory, and no file matches it as a glob")


def test_an_output_path_that_is_a_file_is_one_clear_error(tmp_path, corpus, tiny_hubert):
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "below"):
        r = features(corpus, "-o", out, "--model", tiny_hubert)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("textless-stack: error:")]
        assert str(out) in line and ("not a directory" in line or "a part of the path is a file" in line), line


def test_a_manifest_whose_root_is_missing_fails_each_file(tmp_path, tiny_hubert):
    manifest = tmp_path / "train.tsv"
    manifest.write_text(f"{tmp_path / 'never-there'}\na.wav\t16000\nb.wav\t16000\n")
    r = features(manifest, "-o", tmp_path / "out", "--model", tiny_hubert)
    assert r.returncode == 2, r.stderr
    assert set(read_errors(tmp_path / "out")) == {"a.wav", "b.wav"}
