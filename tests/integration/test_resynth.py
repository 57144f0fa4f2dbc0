"""`textless-stack resynth`: audio -> units -> audio with tiny vocoders built from textlesslib's classes.

The vocoder tests need textlesslib (they skip with the one counted reason where its source was not
available); the registry/refusal tests do not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from support import cli, write_audio

SPEC = {"a.wav": 1.2, "b/c.wav": 2.0, "d.flac": 0.8}
HOP_16K = 320  # CodeHiFiGAN: samples per 50 Hz unit
STEPS = 30


def resynth(corpus, out, tiny_hubert, tiny_kmeans, vocoder, *extra):
    return cli("resynth", corpus, "-o", out, "--model", tiny_hubert, "--layer", "2", "--units", tiny_kmeans[0],
               "--vocoder", vocoder, "--no-progress", *extra)


def wavs(out):
    return {p.relative_to(out / "wav").as_posix(): sf.read(p) for p in sorted((out / "wav").rglob("*.wav"))}


@pytest.fixture
def audio(tmp_path):
    write_audio(tmp_path / "audio", SPEC)
    return tmp_path / "audio"


@pytest.fixture(scope="module")
def hifigan(tmp_path_factory, textlesslib_installed):
    from textless_stack.testing import tiny_vocoders

    return tiny_vocoders.make_hifigan(tmp_path_factory.mktemp("hifigan"), n_units=12, speakers=["ex01", "ex02"],
                                      styles=["happy", "sad"], durations=True)


@pytest.fixture(scope="module")
def tacotron(tmp_path_factory, textlesslib_installed):
    from textless_stack.testing import tiny_vocoders

    return tiny_vocoders.make_tacotron(tmp_path_factory.mktemp("tacotron"), n_units=12)


def test_hifigan_lengths_rate_determinism_speakers_and_resume(tmp_path, audio, tiny_hubert, tiny_kmeans, hifigan):
    out = tmp_path / "out"
    r = resynth(audio, out, tiny_hubert, tiny_kmeans, hifigan, "--speaker", "ex02", "--style", "sad", "--write-units")
    assert r.returncode == 0, r.stderr
    got = wavs(out)
    units = {json.loads(x)["path"]: json.loads(x)["units"] for x in (out / "all_0_1.units.jsonl").read_text().splitlines()}
    assert set(got) == {"a.wav", "b/c.wav", "d.wav"} and set(units) == set(SPEC)
    for key, (wav, rate) in got.items():
        source = next(k for k in SPEC if k.rsplit(".", 1)[0] == key[:-4])
        assert rate == 16000 and len(wav) == len(units[source]) * HOP_16K and np.abs(wav).max() > 0
    again = tmp_path / "again"
    assert resynth(audio, again, tiny_hubert, tiny_kmeans, hifigan, "--speaker", "ex02", "--style", "sad").returncode == 0
    assert {k: v[0].tobytes() for k, v in wavs(again).items()} == {k: v[0].tobytes() for k, v in got.items()}
    other = tmp_path / "other"
    assert resynth(audio, other, tiny_hubert, tiny_kmeans, hifigan, "--speaker", "0", "--style", "sad").returncode == 0
    assert not np.array_equal(wavs(other)["a.wav"][0], got["a.wav"][0])  # the speaker embedding matters
    rerun = resynth(audio, out, tiny_hubert, tiny_kmeans, hifigan, "--speaker", "ex02", "--style", "sad", "--write-units")
    assert rerun.returncode == 0 and "0 extracted, 3 already done" in rerun.stdout
    record = json.loads((out / "provenance.json").read_text())  # every vocoder file, and both runs
    job = json.loads((out / ".parts" / "job.json").read_text())
    assert record["models"]["vocoder"] == job["vocoder"]["files"] and len(record["models"]["vocoder"]) >= 2
    assert record["recipe"]["speaker"] == job["vocoder"]["speaker"] and len(record["runs"]) == 2
    assert record["job"]["command"] == "resynth" and record["disagreements"] == {}
    assert cli("verify", out).returncode == 1  # a resynth job: refused, not half-checked
    changed = resynth(audio, out, tiny_hubert, tiny_kmeans, hifigan, "--speaker", "ex01", "--style", "sad", "--write-units")
    assert changed.returncode == 1 and "(vocoder.speaker differ)" in changed.stderr


def test_hifigan_unknown_speaker_and_deduplicated_units(tmp_path, audio, tiny_hubert, tiny_kmeans, hifigan):
    r = resynth(audio, tmp_path / "x", tiny_hubert, tiny_kmeans, hifigan, "--speaker", "nobody")
    assert r.returncode == 1 and "unknown speaker 'nobody': one of ex01, ex02" in r.stderr
    out = tmp_path / "dedup"
    r = resynth(audio, out, tiny_hubert, tiny_kmeans, hifigan, "--deduplicate", "--write-units")
    assert r.returncode == 0, r.stderr
    records = [json.loads(x) for x in (out / "all_0_1.units.jsonl").read_text().splitlines()]
    assert all(len(r["units"]) == len(r["durations"]) for r in records)  # durations predicted, not given
    assert all(len(wavs(out)[k][0]) % HOP_16K == 0 for k in wavs(out))


def test_tacotron_waveglow_runs_on_cpu_and_resamples(tmp_path, audio, tiny_hubert, tiny_kmeans, tacotron):
    out = tmp_path / "out"
    r = resynth(audio, out, tiny_hubert, tiny_kmeans, tacotron, "--max-decoder-steps", STEPS)
    assert r.returncode == 0, r.stderr
    for wav, rate in wavs(out).values():  # the tiny Tacotron always decodes to max_decoder_steps frames
        assert rate == 22050 and len(wav) == STEPS * 256 and np.isfinite(wav).all()
    resampled = tmp_path / "16k"
    r = resynth(audio, resampled, tiny_hubert, tiny_kmeans, tacotron, "--max-decoder-steps", STEPS,
                "--sample-rate", "16000")
    assert r.returncode == 0, r.stderr
    for wav, rate in wavs(resampled).values():
        assert rate == 16000 and abs(len(wav) - STEPS * 256 * 16000 / 22050) <= 1


def test_bad_inputs_fail_alone(tmp_path, audio, tiny_hubert, tiny_kmeans, hifigan):
    (audio / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    sf.write(audio / "short.wav", np.zeros(200, np.float32), 16000)
    out = tmp_path / "out"
    r = resynth(audio, out, tiny_hubert, tiny_kmeans, hifigan)
    assert r.returncode == 2, r.stderr
    errors = {json.loads(x)["path"] for x in (out / "all_0_1.errors.jsonl").read_text().splitlines()}
    assert errors == {"broken.wav", "short.wav"}
    assert set(wavs(out)) == {"a.wav", "b/c.wav", "d.wav"} and not list(out.rglob("*.tmp"))


def test_registry_vocoder_offline_names_the_file_and_the_command(tmp_path, audio):
    r = cli("resynth", audio, "-o", tmp_path / "out", "--vocoder", "hubert-base-ls960-kmeans-100-tacotron",
            env={"TEXTLESS_STACK_OFFLINE": "1", "TEXTLESS_STACK_MODELS": str(tmp_path / "empty")})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "models fetch hubert-base-ls960-kmeans-100-tacotron" in r.stderr


def test_vocoder_spec_errors_are_one_line(tmp_path, audio):
    spec = tmp_path / "v.json"
    spec.write_text(json.dumps({"kind": "hifigan", "model": "missing.pt", "config": "c.json"}))
    r = cli("resynth", audio, "-o", tmp_path / "out", "--vocoder", spec, "--units", "x")
    assert r.returncode == 1 and "model file" in r.stderr and "does not exist" in r.stderr
    r = cli("resynth", audio, "-o", tmp_path / "out", "--vocoder", "hubert-base-ls960-kmeans-100")
    assert r.returncode == 1 and "is a kmeans file, not a vocoder" in r.stderr
