"""mHuBERT-25Hz (TWIST / SpiritLM units): a BatchNorm positional convolution, loaded strictly, run exactly.

The reference is upstream fairseq, not this project: tests/fixtures/mhubert25 holds a tiny HuBERT with
conv_pos_batch_norm=True and a 640-sample hop, two waveforms and their features at layers 1-3, all made
by fairseq 4db26494 itself (tests/fixtures/mhubert25/generate.py; manifest.json names the commit).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import cli
from textless_stack import cpu_bf16, registry
from textless_stack.checkpoint_policy import torch_load
from textless_stack.encoder import ConvGeometry, DenseEncoder
from textless_stack.loader import UNKNOWN_CONFIG_KEYS, CheckpointError, _refuse_unsafe_drops, load_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mhubert25"
CKPT = FIXTURES / "tiny_mhubert25.pt"
LAYERS = (1, 2, 3)  # 3 is the top; 2 is the last but one, as textlesslib reads layer 11 of 12
TOL = 1e-5
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def golden() -> dict:
    with np.load(FIXTURES / "golden.npz") as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


@pytest.fixture(scope="module")
def wavs() -> dict:
    return {p.stem: torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in sorted((FIXTURES / "wav").glob("*.wav"))}


@pytest.fixture(scope="module")
def loaded():
    return load_model(CKPT)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def test_fixtures_name_their_upstream_commit_and_are_small():
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    assert manifest["upstream"]["commit"].startswith("4db26494")
    assert manifest["model"]["conv_pos_batch_norm"] is True
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".py")
    assert total < 1_000_000


# --- loading --------------------------------------------------------------------------------


def test_batchnorm_pos_conv_loads_strictly_with_its_running_statistics(loaded):
    saved = torch_load(str(CKPT))["model"]
    state = loaded.model.state_dict()
    assert set(state) == set(saved)  # every tensor consumed, none left as built
    for key, value in saved.items():
        assert torch.equal(state[key], value), key
    bn, conv = loaded.model.encoder.pos_conv[0], loaded.model.encoder.pos_conv[1]
    assert isinstance(bn, torch.nn.BatchNorm1d) and isinstance(conv, torch.nn.Conv1d)
    assert not hasattr(conv, "weight_g")  # no weight norm on this conv, as upstream
    assert not bn.training and bn.track_running_stats  # eval: the running statistics, not the batch's
    assert bn.running_var.sub(1).abs().max() > 0.1 and bn.running_mean.abs().max() > 0.1
    assert int(bn.num_batches_tracked) == 4321
    assert loaded.cfg.model.conv_pos_batch_norm is True


def test_frames_are_25_per_second(loaded, wavs, golden):
    geometry = ConvGeometry.of(loaded.model)
    assert geometry.hop == 640 == registry.MODELS["mhubert-base-25hz"].hop
    assert geometry.receptive_field == 720
    for stem, wav in wavs.items():
        frames = (wav.numel() - 720) // 640 + 1
        assert geometry.frames(wav.numel()) == frames == golden[f"{stem}/layer1"].shape[0]


# --- features: the product against upstream -------------------------------------------------------


@pytest.mark.parametrize("layer", LAYERS)
def test_features_equal_upstream_unbatched_and_batched(loaded, wavs, golden, layer):
    encoder = DenseEncoder(loaded.model, layer, normalize=False, device=CPU)
    chunks = {stem: encoder.chunks(wav) for stem, wav in wavs.items()}
    assert all(len(c) == 1 for c in chunks.values())
    batched = encoder.encode([c[0] for c in chunks.values()])  # one padded pass: the short file is padded
    for (stem, c), together in zip(chunks.items(), batched):
        alone = encoder.encode(c)[0]
        reference = golden[f"{stem}/layer{layer}"]
        assert max_diff(alone, reference) < TOL, f"{stem} unbatched"
        assert max_diff(together, reference) < TOL, f"{stem} batched"


def fit_kmeans(features: np.ndarray, path: Path):
    import joblib
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=5, n_init=1, random_state=0).fit(features)
    joblib.dump(km, path)
    return km


@pytest.mark.parametrize("batch_seconds", ["0", "100"], ids=["one-file-per-pass", "one-pass"])
def test_cli_features_and_units_equal_upstream(tmp_path, golden, batch_seconds):
    layer = 2
    stems = ("long", "short")
    km = fit_kmeans(np.concatenate([golden[f"{s}/layer{layer}"].numpy() for s in stems]), tmp_path / "km.bin")
    out = tmp_path / "out"
    r = cli("features", FIXTURES / "wav", "-o", out, "--model", CKPT, "--layer", layer, "--units", tmp_path / "km.bin",
            "--device", "cpu", "--batch-seconds", batch_seconds, "--no-progress")
    assert r.returncode == 0, r.stderr
    units = {}
    for line in "".join(p.read_text() for p in out.glob("*.units.jsonl")).splitlines():
        record = json.loads(line)
        units[Path(record["path"]).stem] = record["units"]
    assert sorted(units) == sorted(stems)
    for stem in stems:
        reference = golden[f"{stem}/layer{layer}"]
        assert max_diff(torch.from_numpy(np.load(out / "features" / f"{stem}.npy")), reference) < TOL, stem
        expected = km.predict(reference.numpy()).tolist()
        assert units[stem] == expected, stem
    assert len({u for stem in stems for u in units[stem]}) > 1  # the units say something


def test_bf16_on_cpu_falls_back_to_fairseq_modules_and_says_so(caplog, wavs, golden):
    model = load_model(CKPT).model  # its own copy: bf16 casts the weights in place
    assert "BatchNorm" in cpu_bf16.unsupported(model)
    caplog.set_level(logging.INFO, logger="textless_stack")
    encoder = DenseEncoder(model, 2, normalize=False, device=CPU, dtype="bf16")
    assert encoder.cpu_forward is None
    assert "through fairseq's modules" in caplog.text and "BatchNorm" in caplog.text
    stems = list(wavs)
    batched = encoder.encode([encoder.chunks(wavs[s])[0] for s in stems])
    for stem, features in zip(stems, batched):
        assert max_diff(features, golden[f"{stem}/layer2"]) < 0.1, stem  # bf16 rounding, not a padding leak


def test_transformers_hubert_agrees_where_installed(loaded, wavs, golden):
    """An independent implementation: Hugging Face's HubertModel (conv_pos_batch_norm since 4.48)."""
    transformers = pytest.importorskip("transformers", reason="HF transformers is not installed in this environment")
    if "conv_pos_batch_norm" not in transformers.HubertConfig().to_dict():
        pytest.skip(f"HF transformers {transformers.__version__} has no conv_pos_batch_norm (added in 4.48)")
    hf = _hf_hubert(transformers, loaded)
    for stem, wav in wavs.items():
        with torch.inference_mode():
            hidden = hf(wav[None], output_hidden_states=True).hidden_states
        for layer in LAYERS:
            assert max_diff(hidden[layer][0], golden[f"{stem}/layer{layer}"]) < TOL, (stem, layer)


def _hf_hubert(transformers, loaded):
    cfg = loaded.cfg.model
    convs = eval(cfg.conv_feature_layers)  # noqa: S307 - our own fixture's config string
    config = transformers.HubertConfig(
        hidden_size=cfg.encoder_embed_dim, num_hidden_layers=cfg.encoder_layers,
        num_attention_heads=cfg.encoder_attention_heads, intermediate_size=cfg.encoder_ffn_embed_dim,
        conv_dim=[c[0] for c in convs], conv_kernel=[c[1] for c in convs], conv_stride=[c[2] for c in convs],
        conv_bias=cfg.conv_bias, feat_extract_norm="group", num_conv_pos_embeddings=cfg.conv_pos,
        num_conv_pos_embedding_groups=cfg.conv_pos_groups, conv_pos_batch_norm=True, do_stable_layer_norm=False,
        feat_proj_layer_norm=True, hidden_act="gelu", layer_norm_eps=1e-5,
    )
    model = transformers.HubertModel(config).eval()
    renames = [
        (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
        (r"^feature_extractor\.conv_layers\.0\.2\.", "feature_extractor.conv_layers.0.layer_norm."),
        (r"^layer_norm\.", "feature_projection.layer_norm."),
        (r"^post_extract_proj\.", "feature_projection.projection."),
        (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.batch_norm."),
        (r"^encoder\.pos_conv\.1\.", "encoder.pos_conv_embed.conv."),
        (r"\.self_attn\.", ".attention."),
        (r"\.self_attn_layer_norm\.", ".layer_norm."),
        (r"\.fc1\.", ".feed_forward.intermediate_dense."),
        (r"\.fc2\.", ".feed_forward.output_dense."),
        (r"^mask_emb$", "masked_spec_embed"),
    ]
    import re

    weights = {}
    for key, value in loaded.model.state_dict().items():
        if key.startswith(("label_embs_concat", "final_proj")):
            continue  # pretraining heads: HF's HubertModel has none
        for pattern, new in renames:
            key = re.sub(pattern, new, key)
        weights[key] = value
    model.load_state_dict(weights, strict=True)
    return model


# --- config keys this fairseq does not know ---------------------------------------------------------


def checkpoint_with(tmp_path, name="edited.pt", weights=None, **model_cfg):
    state = torch_load(str(CKPT))
    state["cfg"]["model"].update(model_cfg)
    for key, value in (weights or {}).items():
        if value is None:
            del state["model"][key]
        else:
            state["model"][key] = value
    path = tmp_path / name
    torch.save(state, path)
    return path


@pytest.mark.parametrize("key, value", [("pos_conv_depth", 2), ("crop_seq_to_multiple", 2),
                                        ("conv_pos_some_future_option", 3)])
def test_a_dropped_key_that_would_change_the_features_is_refused_by_name(tmp_path, key, value):
    path = checkpoint_with(tmp_path, **{key: value})
    with pytest.raises(CheckpointError) as e:
        load_model(path)
    assert str(path) in str(e.value) and f"{key} = {value}" in str(e.value)


@pytest.mark.parametrize("key, value", [("pos_conv_depth", 1), ("crop_seq_to_multiple", 1.0)])
def test_a_key_at_this_fairseqs_behaviour_is_dropped_and_said(tmp_path, loaded, wavs, key, value):
    reloaded = load_model(checkpoint_with(tmp_path, **{key: value}))
    assert any(key in line for line in reloaded.upgrades)
    for model in (loaded.model, reloaded.model):
        model.eval()
    with torch.inference_mode():
        a, _ = loaded.model.extract_features(wavs["short"][None], padding_mask=None, mask=False, output_layer=3)
        b, _ = reloaded.model.extract_features(wavs["short"][None], padding_mask=None, mask=False, output_layer=3)
    assert torch.equal(a, b)


def test_cli_names_the_file_and_the_key(tmp_path):
    path = checkpoint_with(tmp_path, pos_conv_depth=2)
    r = cli("features", FIXTURES / "wav", "-o", tmp_path / "out", "--model", path, "--device", "cpu", "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert str(path) in r.stderr and "pos_conv_depth = 2" in r.stderr


@pytest.mark.parametrize("section, key, ok, bad", [
    ("model", "layer_type", "transformer", "conformer"),
    ("model", "conv_pos_batch_norm", False, True),
    ("model", "pos_conv_depth", 1, 3),
])
def test_the_policy_for_keys_this_fairseq_may_not_know(section, key, ok, bad):
    """Independent of which fairseq runs (the 0.12.2 stand-in knows layer_type; dd106d9 does not)."""
    path = Path("ckpt.pt")
    _refuse_unsafe_drops({key: ok}, section, [key], path)
    with pytest.raises(CheckpointError, match=rf"ckpt\.pt: .*{key} = {bad!r}"):
        _refuse_unsafe_drops({key: bad}, section, [key], path)
    assert all(why for _, why in UNKNOWN_CONFIG_KEYS[section].values())


def test_wav2vec2_with_a_batchnorm_pos_conv_is_refused(tmp_path):
    """Upstream builds it for HuBERT only (Wav2Vec2Config has no such field); so does the backport."""
    path = checkpoint_with(tmp_path, _name="wav2vec2")
    with pytest.raises(CheckpointError, match=r"conv_pos_batch_norm.*'wav2vec2'"):
        load_model(path)


def test_batchnorm_weights_without_the_config_flag_are_refused(tmp_path):
    path = checkpoint_with(tmp_path, conv_pos_batch_norm=False)
    with pytest.raises(CheckpointError, match=r"running_mean.*conv_pos_batch_norm"):
        load_model(path)


def test_missing_running_statistics_are_refused_naming_the_key(tmp_path):
    path = checkpoint_with(tmp_path, weights={"encoder.pos_conv.0.running_var": None})
    with pytest.raises(CheckpointError, match=r"missing keys \['encoder\.pos_conv\.0\.running_var'\]"):
        load_model(path)


# --- 25 Hz all the way through: dumps, durations, merge, resynthesis -----------------------------

HOP = 640


def test_dump_lengths_durations_and_merge_count_25hz_frames(tmp_path, golden):
    km = fit_kmeans(np.concatenate([golden[f"{s}/layer2"].numpy() for s in ("long", "short")]), tmp_path / "km.bin")
    out = tmp_path / "out"
    for shard in ("0", "1"):
        r = cli("features", FIXTURES / "wav", "-o", out, "--model", CKPT, "--layer", "2", "--units", tmp_path / "km.bin",
                "--features", "dump", "--deduplicate", "--shard-index", shard, "--num-shards", "2", "--no-progress")
        assert r.returncode == 0, r.stderr
        assert "25 Hz frames" in r.stderr
    assert json.loads((out / ".parts" / "job.json").read_text())["frame_hop"] == HOP
    r = cli("merge", out)
    assert r.returncode == 0, r.stderr
    keys = [json.loads(x)["path"] for x in (out / "all_0_1.units.jsonl").read_text().splitlines()]
    lengths = [int(x) for x in (out / "all_0_1.len").read_text().split()]
    dump = np.load(out / "all_0_1.npy")
    assert dump.shape[0] == sum(lengths)
    records = [json.loads(x) for x in (out / "all_0_1.units.jsonl").read_text().splitlines()]
    for key, n, record in zip(keys, lengths, records):
        reference = golden[f"{Path(key).stem}/layer2"].numpy()
        samples = sf.info(FIXTURES / "wav" / key).frames
        assert n == (samples - 720) // HOP + 1 == reference.shape[0]  # 25 frames/s
        assert sum(record["durations"]) == n
        units = km.predict(reference).tolist()
        assert record["units"] == [u for i, u in enumerate(units) if i == 0 or u != units[i - 1]]


@pytest.fixture(scope="module")
def twist_vocoder(tmp_path_factory, textlesslib_installed):
    from textless_stack.testing import tiny_vocoders

    return tiny_vocoders.make_hifigan(tmp_path_factory.mktemp("twist"), n_units=12, durations=True, hop=HOP)


def resynth_25hz(tmp_path, golden, out, vocoder, *extra):
    km = tmp_path / "km.bin"
    if not km.exists():
        fit_kmeans(np.concatenate([golden[f"{s}/layer2"].numpy() for s in ("long", "short")]), km)
    return cli("resynth", FIXTURES / "wav", "-o", out, "--model", CKPT, "--layer", "2", "--units", km,
               "--vocoder", vocoder, "--write-units", "--no-progress", *extra)


def test_twist_resynth_renders_640_samples_per_unit(tmp_path, golden, twist_vocoder):
    out = tmp_path / "out"
    r = resynth_25hz(tmp_path, golden, out, twist_vocoder)
    assert r.returncode == 0, r.stderr
    for line in (out / "all_0_1.units.jsonl").read_text().splitlines():
        record = json.loads(line)
        wav, rate = sf.read(out / "wav" / record["path"])
        assert rate == 16000 and len(wav) == len(record["units"]) * HOP and np.abs(wav).max() > 0


def test_twist_resynth_with_predicted_durations_equals_textlesslib(tmp_path, golden, twist_vocoder):
    from textless.vocoders.hifigan.vocoder import CodeHiFiGANVocoder

    out = tmp_path / "dedup"
    r = resynth_25hz(tmp_path, golden, out, twist_vocoder, "--deduplicate")
    assert r.returncode == 0, r.stderr
    root = twist_vocoder.parent
    upstream = CodeHiFiGANVocoder(str(root / "generator.pt"), str(root / "config.json")).eval()
    for line in (out / "all_0_1.units.jsonl").read_text().splitlines():
        record = json.loads(line)
        wav, _ = sf.read(out / "wav" / record["path"], dtype="float32")
        codes = torch.tensor(record["units"]).view(1, -1)
        with torch.inference_mode():
            expected = upstream(codes, dur_prediction=True).numpy()
            log_dur = upstream.model.dur_predictor(upstream.model.dict(codes))
        predicted = torch.clamp(torch.round(torch.exp(log_dur) - 1).long(), min=1)
        assert len(wav) == int(predicted.sum()) * HOP == len(expected)
        assert np.abs(wav - expected).max() < 1e-4  # the wav is 16-bit PCM: its quantisation step is 3e-5
        assert int(predicted.sum()) != sum(record["durations"])  # predicted, not the measured ones


def test_units_of_another_frame_rate_are_refused(tmp_path, tiny_hubert, tiny_kmeans, twist_vocoder):
    """HuBERT's 50 Hz units into TWIST's 25 Hz vocoder would play at half speed: refused, naming both."""
    r = cli("resynth", FIXTURES / "wav", "-o", tmp_path / "o", "--model", tiny_hubert, "--layer", "2",
            "--units", tiny_kmeans[0], "--vocoder", twist_vocoder, "--no-progress")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "one unit per 640 samples at 16000 Hz (40 ms)" in r.stderr and "every 320 samples at 16 kHz (20 ms)" in r.stderr


def test_registry_twist_vocoder_is_usable_offline_names_its_fetch(tmp_path):
    r = cli("resynth", FIXTURES / "wav", "-o", tmp_path / "out", "--vocoder", "mhubert-base-25hz-kmeans-500-hifigan",
            env={"TEXTLESS_STACK_OFFLINE": "1", "TEXTLESS_STACK_MODELS": str(tmp_path / "empty")})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "models fetch mhubert-base-25hz-kmeans-500-hifigan" in r.stderr
