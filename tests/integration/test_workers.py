"""Decoding in worker processes (decoding.py): outputs independent of --workers, crashes confined to a file.

A decoder crash is a real SIGSEGV of the worker process: a sitecustomize.py that this test puts on the
workers' PYTHONPATH makes soundfile.read kill its own process for files whose name contains "crash".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import LAYER, cli, files_under, write_audio

SPEC = {"a.wav": 1.2, "b/c.wav": 3.0, "b/d.flac": 0.7, "e_stereo.wav": 2.0, "f.ogg": 1.5, "g_stereo.flac": 2.5}

CRASHER = '''
import os, signal
import soundfile
_read = soundfile.read
def read(file, *a, **kw):
    if "crash" in os.path.basename(str(file)):
        os.kill(os.getpid(), signal.SIGSEGV)
    return _read(file, *a, **kw)
soundfile.read = read
'''


def with_sitecustomize(tmp_path: Path, code: str) -> dict:
    """An environment whose Python processes (the fork server and its workers too) run CODE at start-up."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(code)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def outputs_of(out: Path) -> dict[str, bytes]:
    """The results; not provenance.json, which records each run's own command line, pid and time."""
    return {rel: (out / rel).read_bytes() for rel in files_under(out)
            if not rel.startswith(".parts/") and rel != "provenance.json"}


@pytest.fixture
def corpus(tmp_path) -> Path:
    write_audio(tmp_path / "corpus", SPEC)
    return tmp_path / "corpus"


def test_outputs_are_byte_identical_for_any_number_of_workers(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    runs = {}
    for workers in ("0", "1", "2"):
        out = tmp_path / f"w{workers}"
        r = cli("features", corpus, "-o", out, "--model", tiny_hubert, "--layer", LAYER, "--units", tiny_kmeans[0],
                "--f0", "--deduplicate", "--device", "cpu", "--batch-seconds", "4", "--workers", workers,
                "--no-progress")
        assert r.returncode == 0, r.stderr
        assert (f"decoding and F0 in {workers} worker processes" if workers != "0"
                else "decoding and F0 in one thread") in r.stderr
        runs[workers] = outputs_of(out)
    assert len(runs["0"]) == len(SPEC) + 2 and runs["0"] == runs["1"] == runs["2"]
    records = [json.loads(x) for x in runs["2"]["all_0_1.units.jsonl"].decode().splitlines()]
    assert all(len(r["f0"]) == len(r["units"]) for r in records)
    job = json.loads((tmp_path / "w2" / ".parts" / "job.json").read_text())
    assert job["resampler"].startswith("soxr ") and job["resampler"].endswith(" HQ")
    made = [json.loads((tmp_path / f"w{w}" / "provenance.json").read_text()) for w in ("0", "1", "2")]
    assert made[0]["job"] == made[1]["job"] == made[2]["job"] == job
    assert made[0]["recipe"] == made[2]["recipe"] and made[0]["models"] == made[2]["models"]


def test_a_worker_crash_fails_its_file_only(tmp_path, corpus, tiny_hubert):
    write_audio(corpus, {"crash_me.wav": 1.0})
    env = with_sitecustomize(tmp_path, CRASHER)
    out = tmp_path / "out"
    r = cli("features", corpus, "-o", out, "--model", tiny_hubert, "--layer", LAYER, "--device", "cpu",
            "--batch-seconds", "4", "--workers", "2", "--no-progress", env=env)
    assert r.returncode == 2, r.stderr
    errors = [json.loads(x) for x in (out / "all_0_1.errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == ["crash_me.wav"]
    assert "the decoding process died on this file" in errors[0]["error"]
    assert sorted(p.relative_to(out / "features").as_posix() for p in (out / "features").rglob("*.npy")) == sorted(
        str(Path(k).with_suffix(".npy")) for k in SPEC)
    in_thread = cli("features", corpus, "-o", tmp_path / "in-thread", "--model", tiny_hubert, "--layer", LAYER,
                    "--device", "cpu", "--batch-seconds", "4", "--workers", "0", "--no-progress", env=env)
    assert in_thread.returncode == -signal.SIGSEGV  # what the workers protect the job from
    reference = tmp_path / "reference"
    assert cli("features", corpus, "-o", reference, "--model", tiny_hubert, "--layer", LAYER, "--device", "cpu",
               "--batch-seconds", "4", "--workers", "0", "--no-progress").returncode == 0
    for k in SPEC:
        npy = Path("features") / Path(k).with_suffix(".npy")
        assert (out / npy).read_bytes() == (reference / npy).read_bytes()


def test_a_killed_worker_does_not_hang_the_job(tmp_path, tiny_hubert, tiny_kmeans):
    """kill -9 a worker while it works (F0 keeps it busy for seconds): its files are decoded again, and the
    job ends complete, with the outputs of an undisturbed run."""
    corpus = tmp_path / "corpus"
    write_audio(corpus, {f"f{i:02d}_stereo.wav": 2.0 for i in range(16)})
    common = ["features", str(corpus), "--model", str(tiny_hubert), "--layer", LAYER, "--units",
              str(tiny_kmeans[0]), "--f0", "--features", "none", "--device", "cpu", "--batch-seconds", "4",
              "--workers", "2", "--no-progress"]
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "textless_stack.cli", *common, "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers, deadline = [], time.time() + 120
    while not workers and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        workers = _decoding_workers(proc.pid)
    assert workers, "no decoding worker appeared"
    time.sleep(1.0)  # well inside the first files' F0
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert "a decoding worker died" in stderr
    reference = tmp_path / "reference"
    assert cli(*common[:-3], "--workers", "0", "--no-progress", "-o", reference).returncode == 0
    assert (out / "all_0_1.units.jsonl").read_bytes() == (reference / "all_0_1.units.jsonl").read_bytes()


def _decoding_workers(parent: int) -> list[int]:
    """The pool's processes: children of the forkserver, which is a child of PARENT."""
    def children(pid):
        try:
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []
    return [w for server in children(parent) for w in children(server)]


NO_WORKERS = '''
import os, sys
if sys.argv[:1] == ["-c"]:  # the fork server (python -c ...): every process forked from it dies at once
    os.register_at_fork(after_in_child=lambda: os._exit(1))
'''


def test_where_no_worker_can_run_decoding_falls_back_to_one_thread(tmp_path, corpus, tiny_hubert):
    env = with_sitecustomize(tmp_path, NO_WORKERS)
    out = tmp_path / "out"
    r = cli("features", corpus, "-o", out, "--model", tiny_hubert, "--layer", LAYER, "--device", "cpu",
            "--batch-seconds", "4", "--workers", "2", "--no-progress", env=env)
    assert r.returncode == 0, r.stderr
    assert "decoding worker processes cannot run here" in r.stderr
    assert len(list((out / "features").rglob("*.npy"))) == len(SPEC)


def test_where_worker_processes_cannot_start_decoding_falls_back_to_one_thread(tmp_path, corpus, tiny_hubert):
    """A TMPDIR too long for the fork server's socket (AF_UNIX paths stop at 108 bytes): an OSError at start."""
    long_tmp = tmp_path / ("x" * 120)
    long_tmp.mkdir()
    out = tmp_path / "out"
    r = cli("features", corpus, "-o", out, "--model", tiny_hubert, "--layer", LAYER, "--device", "cpu",
            "--batch-seconds", "4", "--workers", "2", "--no-progress", env={**os.environ, "TMPDIR": str(long_tmp)})
    assert r.returncode == 0, r.stderr
    assert "decoding worker processes cannot start here (OSError" in r.stderr
    assert len(list((out / "features").rglob("*.npy"))) == len(SPEC)


CONSOLE_SCRIPT_SHAPED = '''
import os, sys
from textless_stack.cli import main  # what the `textless-stack` console script imports; Python re-runs it per worker
from textless_stack import decoding

if __name__ == "__main__":
    decoder = decoding.Decoder(2, False)
    pids = {decoder.pool.submit(os.getpid).result() for _ in range(4)}
    with_torch = sorted(pid for pid in pids if "libtorch" in open(f"/proc/{pid}/maps").read())
    decoder.close()
    print(len(pids), "workers;", len(with_torch), "with torch loaded")
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")
def test_decoding_workers_do_not_load_torch(tmp_path):
    """Each worker re-runs the main script (3.10's fork server drops its '__main__' preload): if the CLI
    imported torch, every worker would load it, seconds and hundreds of MB each, before its first file."""
    script = tmp_path / "textless-stack"
    script.write_text(CONSOLE_SCRIPT_SHAPED)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(";")[1].strip() == "0 with torch loaded", r.stdout
