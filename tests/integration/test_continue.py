"""`textless-stack continue`: GSLM speech continuation with a unit LM, against fairseq's own sampling path.

The LM is trained here, in this environment, with fairseq-train (--task language_modeling --arch
transformer_lm_big, GSLM's ULM architecture, at tiny dims, a few updates) on a unit corpus the fixture writes, and saved the way fairseq
saves it. The reference is fairseq's own loader and generator (hub_utils.from_pretrained, then
GeneratorHubInterface.generate), as textlesslib's UnitLanguageModelSampler uses them.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from support import cli, make_kmeans, write_audio

K = 12  # the tiny_kmeans fixture's units


@pytest.fixture(scope="session")
def ulm(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("ulm")
    rng = random.Random(0)
    lines = []
    for _ in range(240):
        start, step = rng.randrange(K), rng.choice([1, 1, 2])
        lines.append(" ".join(str((start + j * step) % K) for j in range(rng.randint(8, 30))))
    (work / "train.txt").write_text("\n".join(lines[:220]) + "\n")
    (work / "valid.txt").write_text("\n".join(lines[220:]) + "\n")
    bin_dir = Path(sys.executable).parent
    for command in (
            ["fairseq-preprocess", "--only-source", "--trainpref", work / "train.txt", "--validpref",
             work / "valid.txt", "--destdir", work / "data", "--workers", "1"],
            ["fairseq-train", work / "data", "--task", "language_modeling", "--arch", "transformer_lm_big",
             "--decoder-layers", "1", "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32",
             "--decoder-attention-heads", "2", "--share-decoder-input-output-embed", "--sample-break-mode", "eos",
             "--tokens-per-sample", "64", "--max-tokens", "512", "--optimizer", "adam", "--lr", "0.005",
             "--max-update", "20", "--save-dir", work / "ckpt", "--no-epoch-checkpoints", "--cpu", "--seed", "1"]):
        r = subprocess.run([bin_dir / command[0], *command[1:]], capture_output=True, text=True)
        assert r.returncode == 0, f"{command[0]}: {r.stderr[-3000:]}"
    lm = work / "lm"
    lm.mkdir()
    shutil.copy(work / "ckpt" / "checkpoint_best.pt", lm)
    shutil.copy(work / "data" / "dict.txt", lm)
    return lm


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("1 2 3 4\n\n5 6 7 8 9 10 11 0\n2 4 6\n")
    return path


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "continuations.jsonl").read_text().splitlines()]


def run(ulm, out, *args):
    return cli("continue", "--lm", ulm, "-o", out, "--device", "cpu", *args)


def fairseq_samples(ulm: Path, prompts: list[list[int]], seed: int, temperature: float, max_len_b: int,
                    batch_size: int) -> list[list[int]]:
    """fairseq's own path: its loader, its hub interface, its generator (textlesslib's sampler does this)."""
    from fairseq import hub_utils, utils
    from fairseq.hub_utils import GeneratorHubInterface

    x = hub_utils.from_pretrained(str(ulm), "checkpoint_best.pt", str(ulm), archive_map=None, bpe=None,
                                  load_checkpoint_heads=True, sample_break_mode="eos")
    hub = GeneratorHubInterface(x["args"], x["task"], x["models"]).eval()
    hub.cfg.dataset.batch_size, hub.cfg.dataset.max_tokens = batch_size, None  # the batching ours uses
    utils.set_torch_seed(seed)
    d = x["task"].source_dictionary
    tokens = [d.encode_line(" ".join(map(str, p)), add_if_not_exist=False).long() for p in prompts]
    hypos = hub.generate(tokens, beam=1, sampling=True, temperature=temperature, max_len_a=0.0, max_len_b=max_len_b)
    return [[int(d[t]) for t in h[0]["tokens"].tolist() if t >= d.nspecial] for h in hypos]


def test_unit_prompts_equal_fairseqs_own_generator_token_for_token(tmp_path, ulm, prompts):
    out = tmp_path / "out"
    r = run(ulm, out, "--prompts", prompts, "--samples-per-prompt", "2", "--max-len-b", "40", "--seed", "3",
            "--temperature", "0.9", "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    assert "3 prompts -> 6 continuations" in r.stdout
    got = records(out)
    given = [[1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11, 0], [2, 4, 6]]
    assert [(g["prompt"], g["sample"]) for g in got] == [(f"line {n}", s) for n in (1, 3, 4) for s in (0, 1)]
    assert all(g["prompt_units"] == given[i // 2] and g["units"][:len(given[i // 2])] == given[i // 2]
               for i, g in enumerate(got))  # the prompt is the prefix
    assert all(len(g["units"]) <= 40 for g in got) and any(len(g["units"]) > len(g["prompt_units"]) for g in got)
    sequences = [p for p in given for _ in range(2)]
    # chunk b = sequences 4b..4b+3, seeded with --seed + b
    reference = (fairseq_samples(ulm, sequences[:4], seed=3, temperature=0.9, max_len_b=40, batch_size=4)
                 + fairseq_samples(ulm, sequences[4:], seed=4, temperature=0.9, max_len_b=40, batch_size=4))
    assert [g["units"] for g in got] == reference
    assert got[0]["units"] != got[1]["units"]  # two samples of one prompt differ
    record = json.loads((out / "continue.json").read_text())
    assert record["sampling"] == {"temperature": 0.9, "max_len_a": 0.0, "max_len_b": 40, "max_len": None, "seed": 3,
                                  "batch_size": 4}
    assert record["lm_family"] == "gslm"


def test_a_seed_fixes_the_outputs_and_another_changes_them(tmp_path, ulm, prompts):
    runs = {}
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert run(ulm, tmp_path / name, "--prompts", prompts, "--seed", seed, "--max-len-b", "40").returncode == 0
        runs[name] = (tmp_path / name / "continuations.jsonl").read_bytes()
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


def test_audio_prompts_use_the_deduplicated_units_of_features(tmp_path, ulm, tiny_hubert, tiny_kmeans):
    write_audio(tmp_path / "audio", {"a.wav": 1.5, "b/c.flac": 2.0})
    out = tmp_path / "out"
    r = run(ulm, out, tmp_path / "audio", "--model", tiny_hubert, "--layer", "2", "--units", tiny_kmeans[0],
            "--prompt-seconds", "1.0", "--max-len-b", "120")
    assert r.returncode == 0, r.stderr
    units = tmp_path / "units"
    for rel in ("a.wav", "b/c.flac"):  # the same signals, cut to their first second
        data, rate = sf.read(tmp_path / "audio" / rel, dtype="float32")
        (tmp_path / "cut" / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "cut" / rel, data[:rate], rate)
    r = cli("features", tmp_path / "cut", "-o", units, "--model", tiny_hubert, "--layer", "2", "--units",
            tiny_kmeans[0], "--deduplicate", "--features", "none", "--no-progress")
    assert r.returncode == 0, r.stderr
    expected = {json.loads(x)["path"]: json.loads(x)["units"] for x in (units / "all_0_1.units.jsonl").read_text().splitlines()}
    got = {g["prompt"]: g for g in records(out)}
    assert set(got) == {"a.wav", "b/c.flac"}
    for key, g in got.items():
        assert g["prompt_units"] == expected[key] and g["units"][:len(expected[key])] == expected[key]
    record = json.loads((out / "continue.json").read_text())
    assert set(record) >= {"lm_sha256", "model_sha256", "units_sha256", "sampling"}


def test_mismatches_are_refused_by_name(tmp_path, ulm, prompts, tiny_hubert):
    make_kmeans(tmp_path / "km20.bin", n_clusters=20)
    write_audio(tmp_path / "audio", {"a.wav": 1.0})
    r = run(ulm, tmp_path / "o1", tmp_path / "audio", "--model", tiny_hubert, "--layer", "2", "--units",
            tmp_path / "km20.bin")
    assert r.returncode == 1 and f"gives 20 units, but the LM in {ulm} was trained on {K}" in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 99\n")
    r = run(ulm, tmp_path / "o2", "--prompts", bad)
    assert r.returncode == 1 and f"{bad}:2: unit 99 is not in the LM's dictionary (units 0..{K - 1})" in r.stderr
    r = run(ulm, tmp_path / "o3", "--prompts", prompts, tmp_path / "audio")
    assert r.returncode == 1 and "not both or neither" in r.stderr


def test_a_broken_lm_directory_names_the_file(tmp_path, ulm, prompts, tiny_hubert):
    no_dict = tmp_path / "no_dict"
    no_dict.mkdir()
    shutil.copy(ulm / "checkpoint_best.pt", no_dict)
    r = run(no_dict, tmp_path / "o", "--prompts", prompts)
    assert r.returncode == 1 and f"{no_dict / 'dict.txt'}: no such file" in r.stderr
    short = tmp_path / "short"
    short.mkdir()
    shutil.copy(ulm / "checkpoint_best.pt", short)
    (short / "dict.txt").write_text("".join(f"{i} 5\n" for i in range(5)))
    r = run(short, tmp_path / "o", "--prompts", prompts)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{short / 'dict.txt'}: 9 symbols, but checkpoint_best.pt was trained with 16" in r.stderr
    hubert = tmp_path / "hubert"
    hubert.mkdir()
    shutil.copy(tiny_hubert, hubert / "checkpoint_best.pt")
    shutil.copy(ulm / "dict.txt", hubert)
    r = run(hubert, tmp_path / "o", "--prompts", prompts)
    assert r.returncode == 1 and "no decoder.embed_tokens.weight in it: not a unit language model" in r.stderr


def test_speech_with_a_tacotron_and_a_duration_less_hifigan_refused(tmp_path, ulm, prompts, textlesslib_installed):
    from textless_stack.testing import tiny_vocoders

    tacotron = tiny_vocoders.make_tacotron(tmp_path / "taco", n_units=K)
    out = tmp_path / "out"
    r = run(ulm, out, "--prompts", prompts, "--vocoder", tacotron, "--max-len-b", "20")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "wav").iterdir()) == ["line_1__0.wav", "line_3__0.wav", "line_4__0.wav"]
    hifigan = tiny_vocoders.make_hifigan(tmp_path / "hifi", n_units=K)
    r = run(ulm, tmp_path / "o2", "--prompts", prompts, "--vocoder", hifigan)
    assert r.returncode == 1 and "units are deduplicated" in r.stderr


def test_options_that_cannot_sample_are_refused_and_a_prompt_too_long_fails_alone(tmp_path, ulm, prompts):
    r = run(ulm, tmp_path / "cap", "--prompts", prompts, "--max-len", "30")  # refused before the output is claimed
    assert r.returncode == 1 and "--max-len: fairseq's generator takes no cap" in r.stderr
    assert run(ulm, tmp_path / "cap", "--prompts", prompts, "--max-len-b", "30").returncode == 0
    r = run(ulm, tmp_path / "t", "--prompts", prompts, "--temperature", "0")
    assert r.returncode == 1 and "--temperature 0.0: sampling needs a temperature above 0" in r.stderr
    r = run(ulm, tmp_path / "p", "--prompts", prompts, "--prompt-seconds", "-1", "--units", "x")
    assert r.returncode == 1 and "--prompt-seconds -1.0" in r.stderr
    out = tmp_path / "short"
    r = run(ulm, out, "--prompts", prompts, "--max-len-b", "6")  # line 3 has 8 units: no room to continue
    assert r.returncode == 2, r.stderr
    assert [g["prompt"] for g in records(out)] == ["line 1", "line 4"]
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == ["line 3"] and "leaves no room to continue" in errors[0]["error"]


def test_a_registry_lm_is_recorded_at_first_fetch_then_verified(tmp_path, ulm, prompts, monkeypatch):
    """No sha256 is published for GSLM's ULMs: the first download records one; a changed file is refused."""
    import dataclasses
    import tarfile

    from textless_stack import integrity, registry, store
    from textless_stack.jobs import ContinueSpec, continue_speech

    name = "hubert-base-ls960-kmeans-100-ulm"
    archive = tmp_path / "upstream" / "hubert100_lm.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(ulm, arcname="hubert100_lm")
    monkeypatch.setitem(registry.MODELS, name, dataclasses.replace(registry.MODELS[name], url=archive.as_uri()))
    monkeypatch.setenv("TEXTLESS_STACK_MODELS", str(tmp_path / "cache"))
    monkeypatch.delenv("TEXTLESS_STACK_OFFLINE", raising=False)
    directory, digest = store.unpacked(name)
    record = integrity.record_path(tmp_path / "cache" / "hubert100_lm.tgz")
    assert record.read_text().split()[0] == digest == integrity.sha256_file(archive)
    assert store.verify(name) == "ok"
    by_name = continue_speech(ContinueSpec(lm=name, prompts=prompts, output=tmp_path / "a", device="cpu",
                                           max_len_b=30, units=None))
    by_dir = continue_speech(ContinueSpec(lm=str(ulm), prompts=prompts, output=tmp_path / "b", device="cpu",
                                          max_len_b=30))
    assert by_name.outputs == by_dir.outputs == 3
    assert records(tmp_path / "a") == records(tmp_path / "b")
    (tmp_path / "cache" / "hubert100_lm.tgz").write_bytes(b"changed")
    assert store.verify(name) == "CORRUPT"
    with pytest.raises(integrity.IntegrityError, match="recorded at its first download"):
        integrity.verify(tmp_path / "cache" / "hubert100_lm.tgz")


def test_registry_lms_refuse_other_units_and_unsupported_ones_say_why(tmp_path, prompts, monkeypatch):
    from textless_stack.jobs import ContinueSpec, continue_speech
    from textless_stack.store import ModelUnavailable
    from textless_stack.ulm import UlmError

    monkeypatch.setenv("TEXTLESS_STACK_OFFLINE", "1")
    monkeypatch.setenv("TEXTLESS_STACK_MODELS", str(tmp_path / "cache"))
    lm = "hubert-base-ls960-kmeans-100-ulm"
    with pytest.raises(UlmError, match="--units hubert-base-ls960-kmeans-200 is for units of hubert-base-ls960-kmeans"
                                       "-200, but hubert-base-ls960-kmeans-100-ulm models units of hubert-base-ls960-kmeans-100"):
        continue_speech(ContinueSpec(lm=lm, inputs=(str(tmp_path),), units="hubert-base-ls960-kmeans-200",
                                     output=tmp_path / "o"))
    with pytest.raises(UlmError, match="--vocoder cpc-big-ll6k-kmeans-100-tacotron is for units of cpc-big-ll6k"):
        continue_speech(ContinueSpec(lm=lm, prompts=prompts, vocoder="cpc-big-ll6k-kmeans-100-tacotron",
                                     output=tmp_path / "o"))
    with pytest.raises(ModelUnavailable, match="not usable in this image: its dense model, k-means and vocoder"):
        continue_speech(ContinueSpec(lm="gslm-logmel-100-ulm", prompts=prompts, output=tmp_path / "o"))
    with pytest.raises(ModelUnavailable, match=f"models fetch {lm}"):
        continue_speech(ContinueSpec(lm=lm, prompts=prompts, output=tmp_path / "o"))


def test_shards_and_resumed_runs_give_the_outputs_of_one_run(tmp_path, ulm, prompts):
    """Chunk b (--batch-size sequences) is seeded with --seed + b: neither sharding nor resuming moves a sample."""
    opts = ("--prompts", prompts, "--samples-per-prompt", "2", "--batch-size", "2", "--max-len-b", "30")
    whole = tmp_path / "whole"
    assert run(ulm, whole, *opts).returncode == 0
    parts = whole / ".parts" / "continue"
    assert sorted(p.name for p in parts.glob("*.json")) == [f"{b:06d}.{k}.json" for b in range(3)
                                                           for k in ("done", "units")]
    sharded = tmp_path / "sharded"
    r = run(ulm, sharded, *opts, "--num-shards", "2", "--shard-index", "1")
    assert r.returncode == 0 and "other shards still to run" in r.stdout
    assert not (sharded / "continuations.jsonl").exists()
    assert run(ulm, sharded, *opts, "--num-shards", "2", "--shard-index", "0").returncode == 0
    assert (sharded / "continuations.jsonl").read_bytes() == (whole / "continuations.jsonl").read_bytes()

    resumed = tmp_path / "resumed"
    shutil.copytree(whole, resumed)
    (resumed / "continuations.jsonl").unlink()
    for kind in ("units", "done"):
        (resumed / ".parts" / "continue" / f"000001.{kind}.json").unlink()
    kept = (resumed / ".parts" / "continue" / "000000.units.json").stat().st_mtime_ns
    assert run(ulm, resumed, *opts).returncode == 0
    assert (resumed / "continuations.jsonl").read_bytes() == (whole / "continuations.jsonl").read_bytes()
    assert (resumed / ".parts" / "continue" / "000000.units.json").stat().st_mtime_ns == kept  # not resampled

    r = run(ulm, resumed, *opts[:-1], "31")
    assert r.returncode == 1 and "holds another job's continuations (differing: sampling)" in r.stderr


def test_a_killed_run_resumes_to_the_same_outputs(tmp_path, ulm):
    import os
    import signal
    import time

    many = tmp_path / "many.txt"
    rng = random.Random(1)
    many.write_text("".join(" ".join(str(rng.randrange(K)) for _ in range(rng.randint(2, 9))) + "\n"
                            for _ in range(150)))
    opts = ("--prompts", many, "--batch-size", "1", "--max-len-b", "30")
    reference = tmp_path / "reference"
    assert run(ulm, reference, *opts).returncode == 0
    out = tmp_path / "out"
    args = [sys.executable, "-m", "textless_stack.cli", "continue", "--lm", ulm, "-o", out, "--device", "cpu",
            "--no-progress", *opts]
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while len(list((out / ".parts" / "continue").glob("*.done.json"))) < 5 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((out / ".parts" / "continue").glob("*.done.json")))
    assert 5 <= done < 150 and not (out / "continuations.jsonl").exists()
    assert run(ulm, out, *opts).returncode == 0
    assert (out / "continuations.jsonl").read_bytes() == (reference / "continuations.jsonl").read_bytes()
