"""GSLM's CPC (cpc-big-ll6k): features, units and resynthesis through textlesslib's own CpcFeatureReader.

The reference is textlesslib's reader itself, built by its own constructor from the same file (its
torch.load routed through the checkpoint policy at build time). Ours builds the model strictly and
safely, then calls the same get_features, so the features must be equal, not merely close.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf
import torch
from support import cli, make_kmeans, write_audio
from textless_stack import cpc, registry
from textless_stack.loader import CheckpointError, unpickle

SPEC = {"short.wav": 0.5, "a.wav": 1.7, "long/b.flac": 9.37}  # 9.37 s: chunked by the reader (64000 samples)


@pytest.fixture(scope="module")
def tiny_cpc(tmp_path_factory, textlesslib_installed):
    from textless_stack.testing import tiny_cpc

    return tiny_cpc.make_cpc(tmp_path_factory.mktemp("cpc") / "tiny_cpc.pt")


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("cpc-audio")
    write_audio(root, SPEC)
    return root


@pytest.fixture(scope="module")
def kmeans(tmp_path_factory):
    path = tmp_path_factory.mktemp("cpc-km") / "km.bin"
    make_kmeans(path, n_clusters=10, dim=12)
    return path


def reference(path, wav: np.ndarray, layer: int = 2) -> torch.Tensor:
    from textless.data.cpc_feature_reader import CpcFeatureReader

    return CpcFeatureReader(str(path), layer=layer).get_features(torch.from_numpy(wav))


def test_registry_has_gslm_cpc_with_its_kmeans_and_tacotron_sets():
    dense = registry.MODELS["cpc-big-ll6k"]
    assert (dense.kind, dense.layer, dense.hop) == ("dense", 2, 160)
    for k in (50, 100, 200, 500):
        assert registry.MODELS[f"cpc-big-ll6k-kmeans-{k}"].dense == "cpc-big-ll6k"
    for k in (50, 100, 200):
        assert registry.MODELS[f"cpc-big-ll6k-kmeans-{k}-tacotron"].kind == "tacotron"
        assert registry.MODELS[f"cpc-big-ll6k-kmeans-{k}-tacotron-codes"].kind == "tacotron-codes"
        assert registry.vocoder_kmeans(f"cpc-big-ll6k-kmeans-{k}-tacotron") == f"cpc-big-ll6k-kmeans-{k}"


def test_registry_cpc_offline_names_the_command_that_fetches_it(tmp_path, audio):
    env = {"TEXTLESS_STACK_OFFLINE": "1", "TEXTLESS_STACK_MODELS": str(tmp_path / "empty")}
    r = cli("features", audio, "-o", tmp_path / "o", "--units", "cpc-big-ll6k-kmeans-100", env=env)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "models fetch cpc-big-ll6k" in r.stderr
    r = cli("resynth", audio, "-o", tmp_path / "r", "--vocoder", "cpc-big-ll6k-kmeans-100-tacotron", env=env)
    assert r.returncode == 1 and "models fetch cpc-big-ll6k-kmeans-100-tacotron" in r.stderr


def test_geometry_counts_the_frames_the_encoder_gives(textlesslib_installed):
    from textless.data.cpc_feature_reader import CPCEncoder

    enc, g = CPCEncoder(4), cpc.CpcGeometry()
    for n in (g.receptive_field, 1000, 16000, 12345, 64001):
        assert enc(torch.zeros(1, 1, n)).shape[-1] == g.frames(n)
    assert g.frames(g.receptive_field - 1) == 0 and g.hop == 160


def test_features_and_units_equal_textlesslib_reader(tmp_path, audio, tiny_cpc, kmeans):
    out = tmp_path / "out"
    r = cli("features", audio, "-o", out, "--model", tiny_cpc, "--units", kmeans, "--deduplicate", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "LSTM layers 3..4 are not used for features at layer 2" in r.stderr
    record = json.loads((out / ".parts" / "job.json").read_text())
    assert (record["layer"], record["frame_hop"], record["max_chunk"]) == (2, 160, 64000)
    units = {json.loads(x)["path"]: json.loads(x) for x in (out / "all_0_1.units.jsonl").read_text().splitlines()}
    import joblib

    km = joblib.load(kmeans)
    for rel in SPEC:
        wav = sf.read(audio / rel, dtype="float32")[0]
        ours = np.load(out / "features" / (rel.rsplit(".", 1)[0] + ".npy"))
        ref = reference(tiny_cpc, wav).numpy()
        assert ours.shape == ref.shape and ours.shape[1] == 12
        assert np.array_equal(ours, ref), (rel, np.abs(ours - ref).max())
        expected = km.predict(ref).tolist()
        dedup = [u for i, u in enumerate(expected) if i == 0 or u != expected[i - 1]]
        assert units[rel]["units"] == dedup and sum(units[rel]["durations"]) == len(expected)


def test_other_layers_and_the_chunk_size_follow_the_reader(tmp_path, audio, tiny_cpc):
    wav = sf.read(audio / "long/b.flac", dtype="float32")[0]
    out = tmp_path / "l1"
    r = cli("features", audio / "long", "-o", out, "--model", tiny_cpc, "--layer", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(out / "features" / "b.npy"), reference(tiny_cpc, wav, layer=1).numpy())
    out = tmp_path / "l4"
    r = cli("features", audio / "long", "-o", out, "--model", tiny_cpc, "--layer", "4", "--no-progress")
    assert r.returncode == 0 and "not used" not in r.stderr
    assert np.array_equal(np.load(out / "features" / "b.npy"), reference(tiny_cpc, wav, layer=4).numpy())
    assert not np.array_equal(np.load(out / "features" / "b.npy"), np.load(tmp_path / "l1" / "features" / "b.npy"))
    r = cli("features", audio, "-o", tmp_path / "l5", "--model", tiny_cpc, "--layer", "5", "--no-progress")
    assert r.returncode == 1 and "--layer 5: tiny_cpc.pt has LSTM layers 1..4" in r.stderr


def test_half_precision_is_refused_not_faked(tmp_path, audio, tiny_cpc):
    r = cli("features", audio, "-o", tmp_path / "o", "--model", tiny_cpc, "--dtype", "bf16", "--no-progress")
    assert r.returncode == 1 and "CPC runs in fp32 only" in r.stderr


def _resave(tiny_cpc, tmp_path, edit):
    state = torch.load(tiny_cpc, weights_only=True)
    edit(state)
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("edit,message", [
    (lambda s: s["weights"].pop("gEncoder.conv2.bias"), "missing gEncoder.conv2.bias"),
    (lambda s: s["weights"].pop("gAR.baseNet.weight_hh_l1"), "missing gAR.baseNet.weight_hh_l1"),
    (lambda s: s["weights"].update({"cpcCriterion.wPrediction.0.weight": torch.zeros(2, 2)}),
     "unexpected cpcCriterion.wPrediction.0.weight"),
    (lambda s: s["weights"].update({"gAR.baseNet.weight_ih_l7": torch.zeros(2, 2)}),
     "unexpected gAR.baseNet.weight_ih_l7"),
    (lambda s: s["weights"].update({"gEncoder.conv0.weight": torch.zeros(16, 1, 9)}), "wrong shape"),
    (lambda s: s["config"].update({"hiddenGar": 13}), "wrong shape: gAR.baseNet.weight_ih_l0"),
    (lambda s: s["config"].pop("nLevelsGRU"), "lacks a positive integer 'nLevelsGRU'"),
    (lambda s: s.update(weights={"x": 1}), "not all tensors"),
    (lambda s: s.update(config=[1]), "'config' is of type list"),
])
def test_a_checkpoint_that_does_not_match_is_refused_by_name(tmp_path, tiny_cpc, edit, message):
    path = _resave(tiny_cpc, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as e:
        cpc.build(unpickle(path), path, None)
    assert str(path) in str(e.value)


def test_deeper_layers_are_the_only_keys_left_unloaded(tiny_cpc, caplog):
    state = unpickle(tiny_cpc)
    with caplog.at_level(logging.INFO):
        model, layer = cpc.build(state, tiny_cpc, None)
    loaded = model.state_dict()
    assert layer == 2 and model.gAR.baseNet.num_layers == 2
    assert all(torch.equal(v, state["weights"][k]) for k, v in loaded.items())
    unloaded = set(state["weights"]) - set(loaded)
    assert unloaded and all(k.endswith(("_l2", "_l3")) for k in unloaded)
    assert "8 tensors left unloaded" in caplog.text


def test_a_config_that_needs_full_unpickling_is_refused_with_advice(tmp_path, tiny_cpc):
    import pathlib

    path = _resave(tiny_cpc, tmp_path, lambda s: s["config"].update(data=pathlib.PurePosixPath("/data")))
    r = cli("features", tmp_path, "-o", tmp_path / "o", "--model", path, "--no-progress")
    assert r.returncode == 1 and "refused to unpickle global pathlib.PurePosixPath" in r.stderr
    assert "--trust-checkpoint" in r.stderr and str(path) in r.stderr


def test_resynth_from_cpc_units_with_a_tacotron(tmp_path, audio, tiny_cpc, kmeans):
    from textless_stack.testing import tiny_vocoders

    vocoder = tiny_vocoders.make_tacotron(tmp_path / "taco", n_units=10)
    out = tmp_path / "out"
    r = cli("resynth", audio, "-o", out, "--model", tiny_cpc, "--units", kmeans, "--vocoder", vocoder,
            "--max-decoder-steps", "20", "--no-progress")
    assert r.returncode == 0, r.stderr
    rendered = sorted(p.relative_to(out / "wav").as_posix() for p in (out / "wav").rglob("*.wav"))
    assert rendered == ["a.wav", "long/b.wav", "short.wav"]
    few = tiny_vocoders.make_tacotron(tmp_path / "taco8", n_units=8)
    r = cli("resynth", audio, "-o", tmp_path / "few", "--model", tiny_cpc, "--units", kmeans, "--vocoder", few,
            "--no-progress")
    assert r.returncode == 1 and "knows 8 units, but" in r.stderr and "gives 10" in r.stderr


def test_a_tail_shorter_than_a_frame_fails_that_file_instead_of_repeating_it(tmp_path, tiny_cpc):
    """Upstream's last pass runs over the whole file; with a tail under a frame it appends the whole file's
    features a second time (64050 samples -> 800 frames, not 400). That file fails, named; others are kept."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    sf.write(audio / "tail50.wav", 0.1 * rng.normal(size=64050).astype(np.float32), 16000)
    sf.write(audio / "tail500.wav", 0.1 * rng.normal(size=64500).astype(np.float32), 16000)
    assert reference(tiny_cpc, sf.read(audio / "tail50.wav", dtype="float32")[0]).shape[0] == 800  # upstream
    out = tmp_path / "out"
    r = cli("features", audio, "-o", out, "--model", tiny_cpc, "--no-progress")
    assert r.returncode == 2, r.stderr
    errors = {json.loads(x)["path"]: json.loads(x)["error"] for x in (out / "all_0_1.errors.jsonl").read_text().splitlines()}
    assert list(errors) == ["tail50.wav"] and "repeats the features" in errors["tail50.wav"]
    ours = np.load(out / "features" / "tail500.npy")
    assert ours.shape[0] == cpc.CpcGeometry.frames(64500)
    assert np.array_equal(ours, reference(tiny_cpc, sf.read(audio / "tail500.wav", dtype="float32")[0]).numpy())
    r = cli("features", audio / "tail50.wav", "-o", tmp_path / "other", "--model", tiny_cpc, "--max-chunk", "100000",
            "--no-progress")
    assert r.returncode == 0, r.stderr
