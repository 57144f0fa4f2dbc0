"""`textless-stack continue` with TWIST speech LMs (Hugging Face causal LMs over 25 Hz units).

The LMs are tiny random models of TWIST's architectures (OPT, LLaMA), saved as hub directories with
TWIST's `offset`. The reference is the call textlesslib's examples/twist/speech_lm.py makes at ba33d669
(generate_with_offset): `model.generate(offset + ids, max_length=min(250, 3 * len), do_sample=True,
temperature=0.8) - offset`, on the model transformers itself loads from the directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import cli

from textless_stack.testing.tiny_lms import make_twist

K, OFFSET = 5, 4
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mhubert25"
PROMPTS = [[1, 2, 3, 4], [0, 4, 0, 3, 2, 2, 1, 0, 4], [3, 1], [2, 0, 1, 3, 4, 1]]


@pytest.fixture(scope="module", params=["opt", "llama"])
def twist(request, tmp_path_factory) -> Path:
    return make_twist(tmp_path_factory.mktemp(f"twist-{request.param}"), request.param, units=K, offset=OFFSET)


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("".join(" ".join(map(str, p)) + "\n" for p in PROMPTS))
    return path


def run(lm, out, *args):
    return cli("continue", "--lm", lm, "-o", out, "--device", "cpu", "--no-progress", *args)


def records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "continuations.jsonl").read_text().splitlines()]


def textlesslib_generate(directory: Path, units: list[int], seed: int) -> list[int]:
    """examples/twist/speech_lm.py's generate_with_offset, on the model transformers loads."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    offset = model.config.offset
    input_ids = torch.tensor([units])
    torch.manual_seed(seed)
    generated = model.generate(offset + input_ids, max_length=int(min(250, 3 * input_ids.shape[-1])),
                               do_sample=True, temperature=0.8)
    return (generated - offset)[0].tolist()


def test_one_prompt_per_batch_equals_textlesslibs_generate_token_for_token(tmp_path, twist, prompts):
    out = tmp_path / "out"
    r = run(twist, out, "--prompts", prompts, "--batch-size", "1", "--seed", "5")
    assert r.returncode == 0, r.stderr
    got = records(out)
    assert [g["prompt"] for g in got] == [f"line {n}" for n in range(1, 5)]
    for b, (g, p) in enumerate(zip(got, PROMPTS)):
        assert g["units"] == textlesslib_generate(twist, p, seed=5 + b), g["prompt"]  # chunk b: seed + b
        assert g["units"][:len(p)] == p and len(g["units"]) == 3 * len(p)  # TWIST's default length
        assert all(0 <= u < K for u in g["units"])
    record = json.loads((out / "continue.json").read_text())
    assert record["lm_family"] == "twist"
    assert record["sampling"] == {"temperature": 0.8, "max_len_a": 3.0, "max_len_b": 0, "max_len": 250, "seed": 5,
                                  "batch_size": 1}


def test_batched_prompts_are_left_padded_correctly(tmp_path, twist, prompts):
    """At a temperature near zero sampling is argmax: batched (left-padded) and one-by-one runs then agree only
    if the padding changes neither positions nor attention."""
    one, many = tmp_path / "one", tmp_path / "many"
    for out, batch in ((one, "1"), (many, "4")):
        assert run(twist, out, "--prompts", prompts, "--batch-size", batch, "--temperature", "1e-6",
                   "--max-len-a", "0", "--max-len-b", "30").returncode == 0
    assert [g["units"] for g in records(one)] == [g["units"] for g in records(many)]
    assert all(len(g["units"]) == 30 for g in records(many))
    assert len({tuple(g["units"][9:]) for g in records(many)}) > 1  # the continuations depend on the prompt


def test_sampled_tokens_that_are_no_unit_are_dropped(tmp_path, prompts, caplog):
    from textless_stack.ulm import Sampling, open_lm

    lm = open_lm(make_twist(tmp_path / "lm", units=K, offset=OFFSET, only_units=False), torch.device("cpu"))
    sampled = lm.sample(PROMPTS, Sampling(temperature=1.0, max_len_a=0, max_len_b=40), seed=0)
    assert all(s[:len(p)] == p and all(0 <= u < K for u in s) for s, p in zip(sampled, PROMPTS))
    assert any(len(s) < 40 for s in sampled) and "sampled tokens that are no unit dropped" in caplog.text


def test_a_pytorch_model_bin_loads_like_safetensors(tmp_path, prompts):
    a = make_twist(tmp_path / "a", "llama", units=K, offset=OFFSET, seed=3)
    b = make_twist(tmp_path / "b", "llama", units=K, offset=OFFSET, seed=3, weights="bin")
    assert (b / "pytorch_model.bin").is_file() and not (b / "model.safetensors").exists()
    for lm, out in ((a, tmp_path / "oa"), (b, tmp_path / "ob")):
        assert run(lm, out, "--prompts", prompts).returncode == 0
    assert records(tmp_path / "oa") == records(tmp_path / "ob")


def test_loading_is_strict_and_a_non_twist_directory_is_named(tmp_path, twist, prompts):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in twist.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    weights = load_file(broken / "model.safetensors")
    dropped = sorted(k for k in weights if "layers.1." in k)[0]
    del weights[dropped]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    r = run(broken, tmp_path / "o1", "--prompts", prompts)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{broken}: not loaded strictly: 1 weights missing from the files ({dropped})" in r.stderr
    config = json.loads((twist / "config.json").read_text())
    del config["offset"]
    (broken / "config.json").write_text(json.dumps(config))
    r = run(broken, tmp_path / "o2", "--prompts", prompts)
    assert r.returncode == 1 and f"{broken / 'config.json'}: no integer `offset` in it: not a TWIST" in r.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text(f"1 2 {K}\n")
    r = run(twist, tmp_path / "o3", "--prompts", bad)
    assert r.returncode == 1 and f"{bad}:1: unit {K} is not in the LM's dictionary (units 0..{K - 1})" in r.stderr


def test_max_len_caps_and_prefix_size_cuts_the_prompt(tmp_path, twist, prompts):
    out = tmp_path / "out"
    assert run(twist, out, "--prompts", prompts, "--max-len", "8", "--prefix-size", "3").returncode == 0
    got = records(out)
    assert [g["prompt_units"] for g in got] == [p[:3] for p in PROMPTS]
    assert [len(g["units"]) for g in got] == [8, 8, 6, 8]  # min(--max-len, 3 x prompt)
    out = tmp_path / "capped"
    assert run(twist, out, "--prompts", prompts, "--max-len", "3").returncode == 2
    assert [(g["prompt"], len(g["units"])) for g in records(out)] == [("line 3", 3)]
    errors = [json.loads(x) for x in (out / "errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == ["line 1", "line 2", "line 4"]
    assert all("leaves no room to continue: the output is at most 3 units" in e["error"] for e in errors)


def test_audio_prompts_at_25hz_then_speech_from_the_25hz_vocoder(tmp_path, textlesslib_installed):
    """The 25 Hz fixture model and a 5-unit k-means give the prompts; a tiny 25 Hz CodeHiFiGAN with a
    duration predictor (TWIST's vocoder's architecture) speaks 640 samples per predicted frame."""
    import joblib
    from sklearn.cluster import KMeans

    from textless_stack.testing import tiny_vocoders

    with np.load(FIXTURES / "golden.npz") as golden:
        features = np.concatenate([golden[f"{s}/layer2"] for s in ("long", "short")])
    km = tmp_path / "km.bin"
    joblib.dump(KMeans(n_clusters=K, n_init=1, random_state=0).fit(features), km)
    vocoder = tiny_vocoders.make_hifigan(tmp_path / "voc", n_units=K, durations=True, hop=640)
    lm = make_twist(tmp_path / "lm", units=K, offset=OFFSET)
    out = tmp_path / "out"
    r = run(lm, out, FIXTURES / "wav", "--model", FIXTURES / "tiny_mhubert25.pt", "--layer", "2", "--units", km,
            "--vocoder", vocoder)
    assert r.returncode == 0, r.stderr
    got = {g["prompt"]: g for g in records(out)}
    assert sorted(got) == ["long.wav", "short.wav"]
    assert max(len(g["prompt_units"]) for g in got.values()) > 64 // 3  # one is cut by the model's positions
    for key, g in got.items():
        assert len(g["units"]) == min(3 * len(g["prompt_units"]), 64)  # the tiny model's max_position_embeddings
        wav, rate = sf.read(out / "wav" / f"{Path(key).stem}__0.wav")
        assert rate == 16000 and len(wav) > 0 and len(wav) % 640 == 0
    r = run(lm, tmp_path / "o2", FIXTURES / "wav", "--model", FIXTURES / "tiny_mhubert25.pt", "--layer", "2",
            "--units", km, "--vocoder", tiny_vocoders.make_hifigan(tmp_path / "v50", n_units=K, durations=True))
    assert r.returncode == 1 and "speaks one unit per 320 samples" in r.stderr


def test_registry_twist_lm_unzips_records_its_digest_and_refuses_other_units(tmp_path, twist, prompts,
                                                                            monkeypatch):
    import dataclasses
    import zipfile

    from textless_stack import integrity, registry, store
    from textless_stack.jobs import ContinueSpec, continue_speech
    from textless_stack.ulm import UlmError

    name = "twist-350m"
    assert registry.MODELS[name].kmeans == "mhubert-base-25hz-kmeans-500"
    archive = tmp_path / "upstream" / "TWIST-350M.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        for f in twist.iterdir():
            z.write(f, f"TWIST-350M/{f.name}")
    monkeypatch.setitem(registry.MODELS, name, dataclasses.replace(registry.MODELS[name], url=archive.as_uri()))
    monkeypatch.setenv("TEXTLESS_STACK_MODELS", str(tmp_path / "cache"))
    monkeypatch.delenv("TEXTLESS_STACK_OFFLINE", raising=False)
    directory, digest = store.unpacked(name)
    assert (directory / "TWIST-350M" / "config.json").is_file() and digest == integrity.sha256_file(archive)
    by_name = continue_speech(ContinueSpec(lm=name, prompts=prompts, output=tmp_path / "a", device="cpu"))
    by_dir = continue_speech(ContinueSpec(lm=str(twist), prompts=prompts, output=tmp_path / "b", device="cpu"))
    assert by_name.outputs == by_dir.outputs == 4 and records(tmp_path / "a") == records(tmp_path / "b")
    with pytest.raises(UlmError, match="--units hubert-base-ls960-kmeans-100 is for units of hubert-base-ls960-kmeans"
                                       "-100, but twist-350m models units of mhubert-base-25hz-kmeans-500"):
        continue_speech(ContinueSpec(lm=name, inputs=(str(tmp_path),), units="hubert-base-ls960-kmeans-100",
                                     output=tmp_path / "c"))
