"""`textless-stack merge`: the shards of one job become, byte for byte, what one process writes."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from support import cli, features, files_under, write_tsv


def manifest(tmp_path, corpus):
    return write_tsv(tmp_path / "train.tsv", corpus, files_under(corpus))  # bad files too: they fail in order


def run_job(tsv, out, tiny_hubert, tiny_kmeans, shards):
    for i in range(shards):
        r = features(tsv, "-o", out, "--model", tiny_hubert, "--features", "dump", "--split", "train",
                     "--units", tiny_kmeans[0], "--shard-index", i, "--num-shards", shards)
        assert r.returncode in (0, 2), r.stderr
    return out


def merged_files(out):
    return {p.name: p.read_bytes() for p in sorted(out.glob("train_0_1.*"))}


def test_merged_shards_equal_one_process_byte_for_byte(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    tsv = manifest(tmp_path, corpus)
    whole = run_job(tsv, tmp_path / "whole", tiny_hubert, tiny_kmeans, 1)
    sharded = run_job(tsv, tmp_path / "sharded", tiny_hubert, tiny_kmeans, 4)
    assert not list(sharded.glob("train_0_1.*"))
    r = cli("merge", sharded)
    assert r.returncode == 0, r.stderr
    assert "4 shards" in r.stdout and "6 files (6 done, 0 failed)" in r.stdout
    expected = merged_files(whole)
    assert set(expected) == {"train_0_1.npy", "train_0_1.len", "train_0_1.units.jsonl", "train_0_1.done.json"}
    assert merged_files(sharded) == expected
    feats = np.load(sharded / "train_0_1.npy")
    assert feats.shape[0] == sum(int(x) for x in (sharded / "train_0_1.len").read_text().split())
    assert all((sharded / f"train_{i}_4.npy").exists() for i in range(4))  # shards are kept


def test_merge_refuses_until_every_shard_finished(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    tsv = manifest(tmp_path, corpus)
    out = tmp_path / "out"
    for i in (0, 2):
        assert features(tsv, "-o", out, "--model", tiny_hubert, "--features", "dump", "--split", "train",
                        "--units", tiny_kmeans[0], "--shard-index", i, "--num-shards", 3).returncode == 0
    r = cli("merge", out)
    assert r.returncode == 1
    assert "1 of 3 shards are unfinished (train_1_3)" in r.stderr and "Traceback" not in r.stderr
    assert not list(out.glob("train_0_1.*"))
    r = cli("merge", tmp_path)
    assert r.returncode == 1 and "holds no `features` job" in r.stderr


def test_merge_carries_failed_files_in_order(tmp_path, corpus, tiny_hubert, tiny_kmeans):
    (corpus / "broken.wav").write_bytes(b"not audio at all")
    (corpus / "zz_missing.wav").touch()
    tsv = manifest(tmp_path, corpus)
    whole = run_job(tsv, tmp_path / "whole", tiny_hubert, tiny_kmeans, 1)
    sharded = run_job(tsv, tmp_path / "sharded", tiny_hubert, tiny_kmeans, 3)
    assert cli("merge", sharded).returncode == 0
    assert merged_files(sharded) == merged_files(whole)
    errors = [json.loads(x)["path"] for x in (sharded / "train_0_1.errors.jsonl").read_text().splitlines()]
    assert errors == ["broken.wav", "zz_missing.wav"]
    assert json.loads((sharded / "train_0_1.done.json").read_text()) == {"files": 8, "done": 6, "failed": 2}


@pytest.mark.parametrize("kernel", ["copies", "EXDEV", "EPERM", "returns 0", "13 bytes a call"])
def test_a_dump_stacks_its_parts_byte_for_byte(tmp_path, monkeypatch, kernel):
    """The dump's bytes are copied file to file; where the kernel refuses (older kernels, seccomp) or copies
    nothing, by reads; short copies continue where they stopped."""
    from textless_stack.outputs import concat_npy

    real = os.copy_file_range

    def kernel_copy(src, dst, count, src_offset, dst_offset):
        if kernel in ("EXDEV", "EPERM"):
            raise OSError(getattr(errno, kernel), kernel)
        return 0 if kernel == "returns 0" else real(src, dst, min(count, 13), src_offset, dst_offset)

    if kernel != "copies":
        monkeypatch.setattr(os, "copy_file_range", kernel_copy)
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 7)).astype(np.float16) for n in (5, 0, 900, 1)]
    for i, a in enumerate(parts):
        np.save(tmp_path / f"{i}.npy", a)
    rows = concat_npy([tmp_path / f"{i}.npy" for i in range(len(parts))], tmp_path / "all.npy")
    assert rows == [5, 0, 900, 1]
    got = np.load(tmp_path / "all.npy")
    assert got.dtype == np.float16 and np.array_equal(got, np.concatenate(parts))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
