"""The model cache: atomic, sha256-verified downloads; clear offline errors; the models command."""

import hashlib

import pytest
from support import cli
from textless_stack import registry, store


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A registry entry served from a local file:// URL, with a cache of our own."""
    payload = tmp_path / "served.bin"
    payload.write_bytes(b"weights" * 1000)
    model = registry.Model(name="fake-model", url=payload.as_uri(), fname="fake.pt",
                           sha256=hashlib.sha256(payload.read_bytes()).hexdigest(), kind="dense", layer=1)
    monkeypatch.setitem(registry.MODELS, model.name, model)
    monkeypatch.setenv("TEXTLESS_STACK_MODELS", str(tmp_path / "cache"))
    monkeypatch.delenv(store.OFFLINE_ENV, raising=False)
    return model, payload


def test_fetch_verifies_and_lands_atomically(fake_model, tmp_path):
    model, _ = fake_model
    path = store.fetch(model.name, progress=False)
    assert path == tmp_path / "cache" / "fake.pt" and store.verify(model.name) == "ok"
    assert [p.name for p in path.parent.iterdir()] == ["fake.pt"]


def test_wrong_hash_is_discarded(fake_model, monkeypatch, tmp_path):
    model, _ = fake_model
    monkeypatch.setitem(registry.MODELS, model.name, registry.Model(**{**model.__dict__, "sha256": "0" * 64}))
    with pytest.raises(store.ModelUnavailable, match="expected 0000"):
        store.fetch(model.name, progress=False)
    assert not any((tmp_path / "cache").iterdir())


def test_corrupt_cache_entry_is_reported_and_refetched(fake_model):
    model, _ = fake_model
    path = store.fetch(model.name, progress=False)
    path.write_bytes(b"truncated")
    assert store.verify(model.name) == "CORRUPT"
    store.fetch(model.name, progress=False)
    assert store.verify(model.name) == "ok"


def test_unreachable_download_names_the_fix(fake_model, monkeypatch):
    model, payload = fake_model
    payload.unlink()
    with pytest.raises(store.ModelUnavailable, match=r"fake.pt.*textless-stack models fetch fake-model"):
        store.fetch(model.name, progress=False)


def test_a_baked_copy_is_used_and_verified(fake_model, monkeypatch, tmp_path):
    model, payload = fake_model
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / model.fname).write_bytes(payload.read_bytes())
    monkeypatch.setenv(store.BAKED_ENV, str(baked))
    payload.unlink()  # no download possible: the baked copy must serve
    assert store.fetch(model.name, progress=False) == baked / model.fname
    (baked / model.fname).write_bytes(b"tampered")
    with pytest.raises(store.ModelUnavailable, match="baked into this image"):
        store.fetch(model.name, progress=False)


def test_models_command(tmp_path):
    env = {"TEXTLESS_STACK_MODELS": str(tmp_path / "c"), "TEXTLESS_STACK_OFFLINE": "1"}
    listing = cli("models", "list", env=env)
    assert listing.returncode == 0
    assert "hubert-base-ls960 " in listing.stdout and "absent" in listing.stdout
    status = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert set(status) == set(registry.MODELS)  # every entry listed; only ULMs without dense models refused
    assert {n for n, line in status.items() if "UNSUPPORTED" in line} == {
        f"gslm-{kind}-{k}-ulm" for kind in ("logmel", "w2v2") for k in (50, 100, 200)}
    assert "layer 11, 25 Hz frames" in status["mhubert-base-25hz"] and "layer 2, 100 Hz frames" in status["cpc-big-ll6k"]
    assert "speaks mhubert-base-25hz-kmeans-500" in status["mhubert-base-25hz-kmeans-500-hifigan"]
    path = cli("models", "path", "hubert-base-ls960", env=env)
    assert path.stdout.strip() == str(tmp_path / "c" / "hubert_base_ls960.pt")
    fetch = cli("models", "fetch", "hubert-base-ls960", env=env)
    assert fetch.returncode == 1 and "models fetch hubert-base-ls960" in fetch.stderr
    unknown = cli("models", "fetch", "no-such-model", env=env)
    assert unknown.returncode == 1 and "unknown model 'no-such-model'" in unknown.stderr


def test_registry_is_consistent():
    for m in registry.MODELS.values():
        assert (len(m.sha256) == 64 or m.kind == "ulm" and m.sha256 == "") and m.url.startswith("https://")
        if m.kind == "kmeans":
            assert m.dense in registry.MODELS, m.name
        elif m.kind == "dense":
            assert m.layer is not None
        elif m.kind == "ulm":  # GSLM publishes no digest: recorded at the first download (store.py)
            assert m.kmeans in registry.MODELS or m.unsupported, m.name
        else:
            assert m.kind in registry.VOCODER_KINDS, m.name
    # every vocoder set: its parts, and the k-means (hence dense model) it was trained on
    for name, m in registry.MODELS.items():
        if m.kind == "tacotron":
            assert {name + "-codes", "waveglow"} <= set(registry.MODELS)
        if m.kind == "hifigan":
            assert name + "-config" in registry.MODELS
        if m.kind in ("tacotron", "hifigan"):
            assert registry.MODELS[name.rsplit("-", 1)[0]].kind == "kmeans", name
