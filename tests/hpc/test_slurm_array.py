"""`features` as a SLURM job array over the SIF (slurm/submit.sh), on a real single-node cluster.

One corpus, one single-process reference run inside the same SIF, then: a 4-task array + merge equals
it bit for bit; an array with one task cancelled mid-run, resubmitted, redoes only that task's
unfinished file and still equals it; a `--gpus 1` array on a node whose GPU is /dev/null takes the
template's `--nv` path and falls back to CPU.
"""

from __future__ import annotations

import os
import re
import time

import numpy as np
import pytest
from support import make_kmeans, write_audio

SHARDS = 4
FILES = 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from textless_stack.testing import tiny

    work = tmp_path_factory.mktemp("hpc")
    rng = np.random.default_rng(3)
    spec = {f"spk{i % 3}/utt{i:02d}.wav": round(float(rng.uniform(1.0, 4.0)), 2) for i in range(FILES)}
    write_audio(work / "audio", spec)
    tsv = work / "train.tsv"
    tsv.write_text(f"{work / 'audio'}\n" + "".join(f"{rel}\t{int(s * 16000)}\n" for rel, s in spec.items()))
    model = tiny.make_checkpoint(work / "tiny_hubert.pt", "hubert", seed=11)
    make_kmeans(work / "km.bin", n_clusters=8)
    return work, tsv, spec


def binds(work):
    return ["--bind", work, "--models", work / "models"]


def job_args(tsv, work):
    return [tsv, "--model", work / "tiny_hubert.pt", "--layer", "2", "--units", work / "km.bin",
            "--features", "dump", "--split", "train"]


@pytest.fixture(scope="module")
def reference(slurm, corpus):
    """One `features` process in the same SIF, with the tasks' thread count."""
    work, tsv, _ = corpus
    out = work / "reference"
    slurm.run("apptainer", "exec", *slurm.env.get("TS_APPTAINER_FLAGS", "").split(), "--cleanenv", "--bind", work, "--env", "OMP_NUM_THREADS=1", slurm.sif,
              "textless-stack", "features", *job_args(tsv, work), "--output", out, timeout=600)
    files = {p.name: p.read_bytes() for p in out.glob("train_0_1.*")}
    assert set(files) == {"train_0_1.npy", "train_0_1.len", "train_0_1.units.jsonl", "train_0_1.done.json"}
    return files


def merged(out):
    return {p.name: p.read_bytes() for p in out.glob("train_0_1.*")}


def task_logs(out, array_job):
    return {int(m.group(1)): p.read_text() for p in (out / "logs").glob(f"textless-features-{array_job}_*.log")
            if (m := re.search(r"_(\d+)\.log$", p.name))}


def extracted(log):
    """(extracted, already done) from the features summary line of one task's log."""
    m = re.search(r"\((\d+) extracted, (\d+) already done, (\d+) failed\)", log)
    assert m, log
    return int(m.group(1)), int(m.group(2))


def test_array_and_merge_equal_one_process_bit_for_bit(slurm, corpus, reference):
    work, tsv, _ = corpus
    out = work / "array"
    started = time.monotonic()
    array, merge = slurm.submit(out, SHARDS, *job_args(tsv, work), options=binds(work))
    slurm.wait(array, merge)
    wall = time.monotonic() - started
    assert set(slurm.states(array).values()) == {"COMPLETED"} and len(slurm.states(array)) == SHARDS
    assert slurm.states(merge) == {merge: "COMPLETED"}
    assert merged(out) == reference
    logs = task_logs(out, array)
    counts = {i: extracted(logs[i])[0] for i in range(SHARDS)}
    assert sum(counts.values()) == FILES and all(counts.values())
    assert all("decoding in one thread" in log for log in logs.values())  # CPU tasks: the model takes the cores
    print(f"\n{SHARDS}-task array + merge over {FILES} files: {wall:.1f} s wall; files per task {counts}")


def test_cancelled_task_resubmitted_redoes_only_its_unfinished_files(slurm, corpus, reference):
    work, tsv, spec = corpus
    # The same files under another root, except that the longest file of shard 2 (processed last:
    # files are taken shortest first) is a FIFO: that task hangs on it like a stuck read, after
    # writing its other files, and is cancelled there.
    audio, hung = work / "audio", work / "audio-hung"
    keys = list(spec)
    start, end = round(FILES * 2 / SHARDS), round(FILES * 3 / SHARDS)
    shard2 = keys[start:end]
    victim = max(shard2, key=lambda k: spec[k])
    for key in keys:
        (hung / key).parent.mkdir(parents=True, exist_ok=True)
        if key == victim:
            os.mkfifo(hung / key)
        else:
            os.link(audio / key, hung / key)
    tsv_hung = work / "train-hung.tsv"
    tsv_hung.write_text(tsv.read_text().replace(f"{audio}\n", f"{hung}\n", 1))
    out = work / "cancelled"
    array, merge = slurm.submit(out, SHARDS, *job_args(tsv_hung, work), options=binds(work))

    unit_part = lambda key: out / ".parts" / "units" / key.replace(".wav", ".json")  # noqa: E731
    deadline = time.monotonic() + 600
    while not (all(unit_part(k).exists() for k in shard2 if k != victim)
               and all(slurm.states(array).get(str(i)) == "COMPLETED" for i in (0, 1, 3))):
        assert time.monotonic() < deadline, slurm.states(array)
        time.sleep(1)
    assert slurm.states(array)["2"] == "RUNNING" and not unit_part(victim).exists()
    slurm.run("scancel", f"{array}_2")
    slurm.wait(array, merge)
    assert slurm.states(array)["2"] == "CANCELLED"
    assert not merged(out), "the merge must not run after a cancelled task"
    assert not list(out.rglob("*.tmp"))

    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / ".parts" / "units").rglob("*.json")}
    assert len(before) == FILES - 1
    (hung / victim).unlink()
    os.link(audio / victim, hung / victim)
    array2, merge2 = slurm.submit(out, SHARDS, *job_args(tsv_hung, work), options=binds(work))
    slurm.wait(array2, merge2)
    assert set(slurm.states(array2).values()) == {"COMPLETED"} and slurm.states(merge2) == {merge2: "COMPLETED"}
    assert merged(out) == reference
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in before}
    assert after == before, "finished files were extracted again"
    logs = task_logs(out, array2)
    assert {i: extracted(logs[i]) for i in range(SHARDS)} == {0: (0, 5), 1: (0, 5), 2: (1, 4), 3: (0, 5)}


def test_gpu_gres_path_falls_back_to_cpu_without_a_gpu(slurm, corpus, reference):
    gres = slurm.run("sinfo", "-h", "-o", "%G").stdout
    if "gpu" not in gres:
        pytest.skip(f"this cluster declares no GPU gres ({gres.strip()})")
    work, tsv, _ = corpus
    out = work / "gpu"
    array, merge = slurm.submit(out, 2, *job_args(tsv, work), options=[*binds(work), "--gpus", 1])
    slurm.wait(array, merge)
    assert set(slurm.states(array).values()) == {"COMPLETED"} and slurm.states(merge) == {merge: "COMPLETED"}
    for log in task_logs(out, array).values():
        assert "GPU allocated (CUDA_VISIBLE_DEVICES=" in log and "apptainer --nv" in log
        assert "no CUDA device visible: running on CPU" in log
    assert merged(out) == reference
