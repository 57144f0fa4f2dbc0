"""`export` and `parity` (#19): legacy checkpoints out to Hugging Face / safetensors, with a certificate.

The HF side is transformers' own HubertModel / Wav2Vec2Model loading the exported directory; the reference is
fairseq's per-file forward (testing.reference), and for mHuBERT-25Hz also features that upstream fairseq
4db26494 itself produced (tests/fixtures/mhubert25/golden.npz).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from support import cli
from textless_stack import audio, export, parity
from textless_stack.errors import UserError
from textless_stack.loader import load_model
from textless_stack.testing import tiny
from textless_stack.testing.reference import reference_features

FIX25 = Path(__file__).resolve().parents[1] / "fixtures" / "mhubert25"
AUDIO = sorted((FIX25 / "wav").glob("*.wav"))  # two lengths, so that a batch pads
TOL = 1e-5
KINDS = ("hubert", "wav2vec2", "mhubert25")
HF_CLASS = {"hubert": "HubertModel", "wav2vec2": "Wav2Vec2Model", "mhubert25": "HubertModel"}

transformers = pytest.importorskip("transformers", reason="transformers is in the lock: make venv installs it")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("export-ckpt")
    return {"hubert": tiny.make_checkpoint(d / "hubert.pt", "hubert", seed=3),
            "wav2vec2": tiny.make_checkpoint(d / "wav2vec2.pt", "wav2vec2", seed=4),
            "mhubert25": FIX25 / "tiny_mhubert25.pt"}


@pytest.fixture(scope="module")
def kmeans(checkpoints, tmp_path_factory):
    """A k-means on the tiny HuBERT's layer-2 features of the test audio (joblib, as textlesslib's are)."""
    import joblib
    from sklearn.cluster import KMeans

    model = load_model(checkpoints["hubert"]).model
    feats = np.concatenate([reference_features(model, audio.load(p), 2, False).numpy() for p in AUDIO])
    km = KMeans(n_clusters=6, n_init=1, random_state=0).fit(feats)
    path = tmp_path_factory.mktemp("export-km") / "km.bin"
    joblib.dump(km, path)
    return path, km


@pytest.fixture(scope="module")
def hf_exports(checkpoints, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    out = {}
    for kind, ckpt in checkpoints.items():
        directory = tmp_path_factory.mktemp("export-hf") / kind
        report = export.export(export.ExportSpec(model=str(ckpt), output=directory, format="hf", audio=AUDIO))
        out[kind] = directory, report
    return out


def hf_hidden(directory: Path, wav: torch.Tensor) -> list[torch.Tensor]:
    """transformers alone: the exported directory, its own feature extractor, one file."""
    config = json.loads((directory / "config.json").read_text())
    model = getattr(transformers, config["architectures"][0]).from_pretrained(directory).eval()
    extractor = transformers.AutoFeatureExtractor.from_pretrained(directory)
    with torch.inference_mode():
        inputs = extractor(wav.numpy(), sampling_rate=16000, return_tensors="pt")
        return [h[0] for h in model(**inputs, output_hidden_states=True).hidden_states[1:]]


def max_diff(a, b) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


@pytest.mark.parametrize("kind", KINDS)
def test_hf_export_loads_strictly_and_equals_fairseq_at_every_layer(kind, checkpoints, hf_exports):
    directory, report = hf_exports[kind]
    assert sorted(p.name for p in directory.iterdir()) == ["PARITY.md", "config.json", "model.safetensors",
                                                           "parity.json", "preprocessor_config.json"]
    cls = getattr(transformers, HF_CLASS[kind])
    _, info = cls.from_pretrained(directory, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}, info  # nothing missing, unused or misshapen
    loaded = load_model(checkpoints[kind])
    normalize = bool(loaded.cfg.task.get("normalize", False))
    assert json.loads((directory / "preprocessor_config.json").read_text())["do_normalize"] is normalize
    layers = len(loaded.model.encoder.layers)
    golden = np.load(FIX25 / "golden.npz") if kind == "mhubert25" else None
    for path in AUDIO:
        wav = audio.load(path)
        hidden = hf_hidden(directory, wav)
        assert len(hidden) == layers
        for layer in range(1, layers + 1):
            reference = reference_features(loaded.model, wav, layer, normalize)
            assert max_diff(hidden[layer - 1], reference) < TOL, (kind, path.name, layer)
            if golden is not None:  # upstream fairseq's own numbers
                assert max_diff(hidden[layer - 1], golden[f"{path.stem}/layer{layer}"]) < TOL, (path.name, layer)
    assert report["status"] == "pass" and report["summary"]["per_file_max_abs_diff"] < TOL
    assert len(report["files"]) == len(AUDIO) and all(len(f["per_file"]["layers"]) == layers for f in report["files"])
    on_disk = json.loads((directory / "parity.json").read_text())
    assert on_disk["schema"] == parity.PARITY_SCHEMA and on_disk["exported"]["directory"] == str(directory)
    assert on_disk["exported"]["files"]["model.safetensors"] == _sha256(directory / "model.safetensors")


def test_reference_layers_equal_fairseqs_extract_features_at_each_layer(checkpoints):
    """The certificate's one-pass reference equals fairseq's extract_features(output_layer=l) for every l."""
    for kind in KINDS:
        loaded = load_model(checkpoints[kind])
        wav = audio.load(AUDIO[0])
        got = parity.reference_layers(loaded.model, wav, False)
        assert len(got) == len(loaded.model.encoder.layers)
        for layer, features in enumerate(got, start=1):
            assert max_diff(features, reference_features(loaded.model, wav, layer, False)) == 0.0, (kind, layer)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert"])
def test_a_layer_norm_model_that_normalises_its_waveform_exports_exactly(kind, tmp_path):
    """HuBERT / wav2vec 2.0 large's layout: layer-normed conv extractor, pre-LN transformer (its top layer read
    after the final norm, as HF's last hidden state is), conv bias, a normalising task."""
    model, task, cfg = tiny.build(kind, seed=5, normalize=True, layer_norm_first=True, extractor_mode="layer_norm",
                                  conv_bias=True, encoder_embed_dim=48)
    ckpt = tiny.save(tiny.trainer_state(model, task, cfg), tmp_path / "large.pt")
    report = export.export(export.ExportSpec(model=str(ckpt), output=tmp_path / "hf", audio=AUDIO))
    pre = json.loads((tmp_path / "hf" / "preprocessor_config.json").read_text())
    assert pre["do_normalize"] is True and pre["return_attention_mask"] is True
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["feat_extract_norm"] == "layer" and config["do_stable_layer_norm"] is True
    s = report["summary"]
    assert report["status"] == "pass" and s["per_file_max_abs_diff"] < TOL
    # HF's own normalisation (eps 1e-7, not 1e-5) is measured and shown, not hidden in the verdict
    assert TOL < s["per_file_hf_extractor_max_abs_diff"] < 1e-2
    assert "Normalisation caveat" in (tmp_path / "hf" / "PARITY.md").read_text()
    # with an attention mask, HF's batches are exact up to that normalisation
    assert s["batched_max_abs_diff"] < 2 * s["per_file_hf_extractor_max_abs_diff"]


@pytest.mark.parametrize("kind", ["hubert", "mhubert25"])
def test_parity_reports_the_batched_difference_of_a_group_norm_model(kind, hf_exports):
    directory, report = hf_exports[kind]
    assert "return_attention_mask=False" in report["batched"]["how"]
    assert report["batched"]["items"] == [str(p) for p in AUDIO]
    # one file at a time: exact; zero-padded in one batch, as HF's docs say for these models: not
    assert report["summary"]["per_file_max_abs_diff"] < TOL
    assert report["summary"]["batched_max_abs_diff"] > 1e-2
    short = min(report["files"], key=lambda f: f["seconds"])
    assert min(l["mean_cosine"] for l in short["batched"]["layers"]) < 0.999
    text = (directory / "PARITY.md").read_text()
    assert "PASS" in text and "Batching caveat" in text and f"{report['summary']['batched_max_abs_diff']:.3g}" in text


def test_safetensors_export_needs_no_pickle_and_round_trips_with_its_kmeans(checkpoints, kmeans, tmp_path):
    from safetensors import safe_open

    km_path, km = kmeans
    out = tmp_path / "st"
    report = export.export(export.ExportSpec(model=str(checkpoints["hubert"]), output=out, format="safetensors",
                                             units=str(km_path), layer=2, audio=AUDIO))
    loaded = load_model(checkpoints["hubert"])
    for name in ("model.safetensors", "kmeans.safetensors", "kmeans.npy", "config.json", "kmeans.json"):
        head = (out / name).read_bytes()[:2]
        assert head not in (b"PK", b"\x80\x02", b"\x80\x04"), f"{name} is a pickle"  # torch.save / pickle
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "textless-stack/fairseq-safetensors/1" and config["model"]["encoder_layers"] == 2
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        state = loaded.model.state_dict()
        assert sorted(f.keys()) == sorted(state)
        for key in state:
            assert torch.equal(f.get_tensor(key), state[key]), key
    centroids = np.load(out / "kmeans.npy", allow_pickle=False)
    assert np.array_equal(centroids, km.cluster_centers_)
    record = json.loads((out / "kmeans.json").read_text())
    assert record["k"] == 6 and record["dim"] == 32 and record["layer"] == 2
    assert record["dense_model"]["sha256"] == loaded.sha256 and "squared Euclidean" in record["assignment"]
    # the written rule, in numpy alone, gives sklearn's units
    feats = reference_features(loaded.model, audio.load(AUDIO[1]), 2, False).numpy().astype(np.float64)
    rule = ((feats[:, None, :] - centroids[None].astype(np.float64)) ** 2).sum(-1).argmin(1)
    assert rule.tolist() == km.predict(feats.astype(np.float32)).tolist()
    # through the strict loader again: fairseq's classes, the same numbers, batched too (padding-exact)
    assert report["status"] == "pass" and report["summary"]["per_file_max_abs_diff"] == 0.0
    assert report["summary"]["batched_max_abs_diff"] < 1e-4
    assert report["summary"]["per_file_min_unit_agreement"] == 1.0 and report["kmeans"]["k"] == 6


def test_a_tampered_export_fails_parity(checkpoints, hf_exports, tmp_path):
    from safetensors.torch import load_file, save_file

    original, _ = hf_exports["hubert"]
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(original, good)
    shutil.copytree(original, bad)
    weights = load_file(str(bad / "model.safetensors"))
    key = "encoder.layers.1.feed_forward.output_dense.weight"
    weights[key][0] += 0.1  # one output channel (a shift of all of them would vanish in the LayerNorm after)
    save_file(weights, str(bad / "model.safetensors"), metadata={"format": "pt"})
    ckpt = str(checkpoints["hubert"])

    recorded = json.loads((good / "parity.json").read_text())["exported"]["files"]
    untouched = parity.run(parity.Spec(model=ckpt, target=f"hf:{good}", audio=AUDIO), expected_files=recorded)
    assert untouched["status"] == "pass" and untouched["exported"]["changed_since_export"] == []
    r = cli("parity", "--model", ckpt, "--against", f"hf:{bad}", *AUDIO, "-o", tmp_path / "report")
    assert r.returncode == 1, r.stderr
    assert "FAIL: files changed since export: model.safetensors" in r.stdout
    report = json.loads((tmp_path / "report" / "parity.json").read_text())
    assert report["status"] == "fail" and report["summary"]["per_file_max_abs_diff"] > 1e-3
    assert "# Parity certificate: FAIL" in (tmp_path / "report" / "PARITY.md").read_text()
    # without the export's record, the numbers alone catch it
    alone = parity.run(parity.Spec(model=ckpt, target=f"hf:{bad}", audio=AUDIO))
    assert alone["status"] == "fail" and alone["failures"][0].startswith("per-file max |diff|"), alone["failures"]


def test_export_refuses_a_cpc_checkpoint_and_names_it(textlesslib_installed, tmp_path):
    from textless_stack.testing.tiny_cpc import make_cpc

    cpc = make_cpc(tmp_path / "cpc.pt")
    with pytest.raises(UserError, match=str(cpc)):
        export.export(export.ExportSpec(model=str(cpc), output=tmp_path / "a"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpc.pt"]


def test_export_refuses_what_it_cannot_write_faithfully(checkpoints, tmp_path):
    with pytest.raises(UserError, match="Vocoders and unit LMs are not exported"):
        export.export(export.ExportSpec(model="hubert-base-ls960-kmeans-100-tacotron", output=tmp_path / "b"))
    with pytest.raises(UserError, match="say which --layer"):
        export.export(export.ExportSpec(model=str(checkpoints["hubert"]), output=tmp_path / "c", units="km.bin"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        export.export(export.ExportSpec(model=str(checkpoints["hubert"]), output=tmp_path / "full"))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_an_interrupted_export_leaves_nothing_that_looks_finished(checkpoints, tmp_path, monkeypatch):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(parity, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export.export(export.ExportSpec(model=str(checkpoints["hubert"]), output=tmp_path / "out", audio=AUDIO))
    assert list(tmp_path.iterdir()) == []


MODERN = """
import importlib.util, json, sys
import numpy as np, torch, transformers
for gone in ("fairseq", "omegaconf", "hydra", "textless_stack"):
    assert importlib.util.find_spec(gone) is None, gone
out = {"python": sys.version.split()[0], "transformers": transformers.__version__}
for directory in sys.argv[2:]:
    config = json.load(open(directory + "/config.json"))
    model, info = getattr(transformers, config["architectures"][0]).from_pretrained(directory, output_loading_info=True)
    out[directory] = {k: sorted(v) for k, v in info.items() if v}
    extractor = transformers.AutoFeatureExtractor.from_pretrained(directory)
    with torch.inference_mode():
        for i, wav in enumerate(np.load(sys.argv[1]).values()):
            hidden = model.eval()(**extractor(wav, sampling_rate=16000, return_tensors="pt"), output_hidden_states=True)
            np.save(f"{directory}.{i}.npy", torch.stack(hidden.hidden_states[1:])[:, 0].numpy())
print(json.dumps(out))
"""


def test_hf_exports_load_in_a_modern_environment_without_fairseq(build_dir, checkpoints, hf_exports, tmp_path):
    """Python 3.12 with the newest transformers that resolves (env/pins.toml [export_check]), no fairseq."""
    python = build_dir / "export-check" / "bin" / "python"
    if not python.exists():
        pytest.skip("Python 3.12 is not installed on this machine: no modern export-check environment")
    waves = tmp_path / "wavs.npz"
    np.savez(waves, *[sf.read(p, dtype="float32")[0] for p in AUDIO])
    dirs = [str(hf_exports[kind][0]) for kind in KINDS]
    script = tmp_path / "modern.py"
    script.write_text(MODERN)
    r = subprocess.run([str(python), "-I", str(script), str(waves), *dirs], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["python"].startswith("3.12") and not any(result[d] for d in dirs), result
    for kind, directory in zip(KINDS, dirs):
        loaded = load_model(checkpoints[kind])
        for i, path in enumerate(AUDIO):
            hidden = torch.from_numpy(np.load(f"{directory}.{i}.npy"))
            wav = audio.load(path)
            for layer in range(1, len(hidden) + 1):
                reference = reference_features(loaded.model, wav, layer, False)
                assert max_diff(hidden[layer - 1], reference) < TOL, (kind, path.name, layer)


def _sha256(path: Path) -> str:
    from textless_stack.integrity import sha256_file

    return sha256_file(path)
