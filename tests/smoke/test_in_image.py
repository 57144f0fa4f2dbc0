"""What every image must do, run inside it (and in the local environment, wherever the check means something there)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pins
import pytest
import soundfile as sf
from patcher import PROJECTS
from support import TEXTLESSLIB_MISSING, make_kmeans, write_audio

PYTHON = "python"
MHUBERT25 = Path(__file__).resolve().parents[1] / "fixtures" / "mhubert25"


def self_check(container, command):
    """`doctor` or `selftest` in the backend. In the SIF both come from one `apptainer test` (the def's
    %test runs doctor, then selftest), so that neither runs twice there (test_sif.py reads it too)."""
    return container.self_test if container.name == "apptainer" else container.run([command])


def manifest(container):
    r = container.run(["-c", "import json, os, sys; from textless_stack.diagnose import manifest_path; "
                             "print(manifest_path().read_text())"], entrypoint=PYTHON)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_doctor_is_healthy(container):
    r = self_check(container, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "healthy" in r.stdout and "PROBLEM" not in r.stdout
    assert "patches fairseq" in r.stdout and "files verified" in r.stdout
    if container.name != "local":
        assert "/opt/textless-stack/sbom.cdx.json (CycloneDX)" in r.stdout


def test_selftest_passes(container):
    """Strict load, batching parity, and the bf16-on-CPU forward against this image's own fairseq."""
    r = self_check(container, "selftest")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and "ok   bf16 CPU forward's function = fairseq's" in r.stdout


def test_entrypoint_prints_help(container):
    r = container.run(["--help"])
    assert r.returncode == 0 and "features" in r.stdout and "doctor" in r.stdout


def test_versions_equal_the_pins(container):
    p = pins.load()
    wanted = p["runtime"] | pins.variant_packages(p, pins.default_variant(p))
    code = ("import json, importlib.metadata as md, sys; names = json.loads(sys.argv[1]); "
            "print(json.dumps({n: md.version(n) for n in names}))")
    r = container.run(["-c", code, json.dumps(sorted(wanted))], entrypoint=PYTHON)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == wanted


def test_dependencies_are_consistent(container):
    code = ("import importlib.metadata as md, re, sys\n"
            "from packaging.requirements import Requirement\n"
            "bad = []\n"
            "for d in md.distributions():\n"
            "    for req in d.requires or []:\n"
            "        r = Requirement(req)\n"
            "        if r.marker and not r.marker.evaluate({'extra': ''}): continue\n"
            "        try: v = md.version(r.name)\n"
            "        except md.PackageNotFoundError: bad.append(f'{d.metadata[\"Name\"]}: {r.name} missing'); continue\n"
            "        if not r.specifier.contains(v, prereleases=True): bad.append(f'{d.metadata[\"Name\"]}: {req} but {v}')\n"
            "print('\\n'.join(bad)); sys.exit(1 if bad else 0)\n")
    r = container.run(["-c", code], entrypoint=PYTHON)
    # omegaconf 2.0.6 declares `PyYAML>=5.1.*`, which modern tools reject outright: the one known exception
    problems = [line for line in r.stdout.splitlines() if not line.startswith("omegaconf:")]
    assert not problems, r.stdout + r.stderr


def test_patch_report_is_complete(container):
    m = manifest(container)
    for project in ("fairseq", "hydra"):
        report = m["patches"][project]
        expected = {t.name for t in PROJECTS[project].transforms if report["flavour"] in t.count}
        got = {t["name"] for f in report["files"] for t in f["transforms"]}
        assert got == expected, project
    if m["sources"]["textlesslib"].get("kind") != "unavailable":
        assert m["patches"]["textlesslib"]["transforms_applied"] > 0
    assert m["sources"]["fairseq"]["pinned_commit"] == pins.load()["sources"]["fairseq"]["commit"]


def test_the_image_carries_its_sbom(container):
    """CycloneDX 1.6 at the documented path: every installed distribution at its installed version, the Debian
    packages, and the patched upstreams tied to the manifest's patch reports; beside the SIF, the same file."""
    if container.name == "local":
        pytest.skip("the SBOM is written when an image is built")
    r = container.run(["-c", "from textless_stack.diagnose import sbom_path; print(sbom_path(), sbom_path().read_text())"],
                      entrypoint=PYTHON)
    assert r.returncode == 0, r.stderr
    path, text = r.stdout.split(" ", 1)
    assert path == "/opt/textless-stack/sbom.cdx.json"
    sbom, m = json.loads(text), manifest(container)
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6"
    assert sbom["metadata"]["component"]["version"] == m["revision"]
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    pypi = {norm(c["name"]): c["version"] for c in sbom["components"] if c["purl"].startswith("pkg:pypi/")}
    frozen = dict(line.split("==", 1) for line in m["freeze"] if "==" in line)
    assert frozen and {norm(k): v for k, v in frozen.items()}.items() <= pypi.items()
    debs = {c["name"] for c in sbom["components"] if c["purl"].startswith("pkg:deb/debian/")}
    assert {"libc6", "libssl3", "ca-certificates"} <= debs
    by_name = {c["name"]: c for c in sbom["components"]}
    for project, dist in (("fairseq", "fairseq"), ("hydra", "hydra-core")):
        props = {p["name"]: p["value"] for p in by_name[dist]["properties"]}
        canonical = json.dumps(m["patches"][project], sort_keys=True, separators=(",", ":")).encode()
        assert props["textless-stack:patch-report-sha256"] == hashlib.sha256(canonical).hexdigest(), project
    if container.name == "apptainer":
        beside = Path(container.sif).with_name(Path(container.sif).stem + ".sbom.cdx.json")
        assert json.loads(beside.read_text()) == sbom


def test_manifest_names_base_and_stand_ins(container):
    m = manifest(container)
    assert ("base_image" in m) == (container.name != "local")  # the local environment has no base image
    if "base_image" in m:
        assert m["base_image"]["pinned"] == pins.load()["base_image"]["ref"]
        assert (m["base_image"]["standin"]) == ("base_image" in m["standins_used"])
        assert any(line.startswith("torch==") for line in m["freeze"])
    assert ("fairseq" in m["standins_used"]) == m["sources"]["fairseq"]["standin"]


def test_features_on_legacy_checkpoint_match_the_local_environment(container, legacy_checkpoints, shared_audio,
                                                                   shared_dir, tmp_path):
    if container.name == "local":
        pytest.skip("compares an image with the local environment: locally it would compare it with itself")
    audio = shared_audio("in", {"one.wav": 1.3, "two/three.flac": 2.1})
    out = shared_dir("out")
    binds = [(audio, "/in"), (out, "/out"), (legacy_checkpoints, "/ckpt")]
    r = container.run(["features", "/in", "-o", "/out", "--model", "/ckpt/legacy.pt", "--layer", "2",
                       "--workers", "2", "--no-progress"], binds=binds)  # decoded in worker processes there
    assert r.returncode == 0, r.stderr
    assert "decoding in 2 worker processes" in r.stderr
    from textless_stack.jobs import FeaturesSpec, features

    local = tmp_path / "local"
    summary = features(FeaturesSpec(inputs=(str(audio),), output=local, model=str(legacy_checkpoints / "legacy.pt"),
                                    layer=2, device="cpu", shard_index=0, num_shards=1, progress=False))
    assert (summary.files, summary.failed) == (2, 0)
    for rel in ("features/one.npy", "features/two/three.npy"):
        assert np.array_equal(np.load(out / rel), np.load(local / rel)), rel


def test_bad_input_in_the_image(container, legacy_checkpoints, shared_audio, shared_dir):
    audio = shared_audio("in", {"good.wav": 1.0})
    (audio / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    sf.write(audio / "short.wav", np.zeros(100, np.float32), 16000)
    for p in audio.iterdir():
        p.chmod(0o644)
    out = shared_dir("out")
    binds = [(audio, "/in"), (out, "/out"), (legacy_checkpoints, "/ckpt")]
    r = container.run(["features", "/in", "-o", "/out", "--model", "/ckpt/legacy.pt", "--layer", "2",
                       "--workers", "2", "--no-progress"], binds=binds)
    assert r.returncode == 2, r.stderr
    errors = [json.loads(x) for x in (out / "all_0_1.errors.jsonl").read_text().splitlines()]
    assert {e["path"] for e in errors} == {"broken.wav", "short.wav"}
    assert (out / "features" / "good.npy").exists()
    bad = container.run(["inspect", "/ckpt/missing.pt"], binds=binds)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "no such file" in bad.stderr


def test_nothing_is_written_outside_tmp_and_binds(sealed_container, legacy_checkpoints, shared_audio, shared_dir):
    """A write anywhere else fails the run: Docker's root and the SIF are read-only, and the local run is
    sealed the same way (every filesystem but /tmp and the binds read-only, the images' cache variables)."""
    container = sealed_container
    audio = shared_audio("in", {"x.wav": 0.8})
    out = shared_dir("out")
    r = container.run(["features", "/in", "-o", "/out", "--model", "/ckpt/legacy.pt", "--layer", "2", "--workers", "2",
                       "--no-progress"], binds=[(audio, "/in"), (out, "/out"), (legacy_checkpoints, "/ckpt")],
                      env={"HOME": "/nonexistent"})
    assert r.returncode == 0, r.stderr
    code = ("import importlib.util, textless_stack.cli, fairseq, hydra, omegaconf, librosa, numba\n"
            "if importlib.util.find_spec('textless'): import textless, textless.checkpoint_manager\n"
            "print('imported')")
    r = container.run(["-c", code], entrypoint=PYTHON, env={"HOME": "/nonexistent"})
    assert r.returncode == 0 and "imported" in r.stdout, r.stderr


def test_resynth_in_the_image(container, legacy_checkpoints, shared_dir):
    """Whenever the image carries textlesslib: tiny CodeHiFiGAN files made inside it, then audio -> audio."""
    if container.run(["-c", "import textless"], entrypoint=PYTHON).returncode != 0:
        pytest.skip(TEXTLESSLIB_MISSING)
    work = shared_dir("work")
    write_audio(work / "in", {"one.wav": 1.3, "two.flac": 0.9})
    make_kmeans(work / "km.bin")
    for p in work.rglob("*"):
        p.chmod(0o777 if p.is_dir() else 0o666)
    binds = [(work, "/job"), (legacy_checkpoints, "/ckpt")]
    made = container.run(["-c", "import sys; from pathlib import Path; from textless_stack.testing import tiny_vocoders; "
                                "tiny_vocoders.make_hifigan(Path(sys.argv[1]), n_units=12, speakers=['a', 'b'])",
                          container.path(work, "/job") + "/voc"], binds=binds, entrypoint=PYTHON)
    assert made.returncode == 0, made.stderr
    r = container.run(["resynth", "/job/in", "-o", "/job/out", "--model", "/ckpt/legacy.pt", "--layer", "2",
                       "--units", "/job/km.bin", "--vocoder", "/job/voc/vocoder.json", "--speaker", "b",
                       "--no-progress"], binds=binds)
    assert r.returncode == 0, r.stderr
    for name, seconds in (("one.wav", 1.3), ("two.wav", 0.9)):
        info = sf.info(work / "out" / "wav" / name)
        assert info.samplerate == 16000 and abs(info.frames - seconds * 16000) <= 2 * 320


def test_mhubert_25hz_features_equal_upstream_in_the_image(container, shared_dir):
    """The image's fairseq carries the BatchNorm positional conv (backported at build time): a tiny 25 Hz
    mHuBERT gives upstream fairseq 4db26494's features, both files in one padded batch."""
    work = shared_dir("fx")
    shutil.copytree(MHUBERT25 / "wav", work / "wav")
    shutil.copy(MHUBERT25 / "tiny_mhubert25.pt", work)
    for p in work.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    out = shared_dir("out")
    r = container.run(["features", "/fx/wav", "-o", "/out", "--model", "/fx/tiny_mhubert25.pt", "--layer", "2",
                       "--device", "cpu", "--batch-seconds", "100", "--no-progress"],
                      binds=[(work, "/fx"), (out, "/out")])
    assert r.returncode == 0, r.stderr
    assert "25 Hz frames" in r.stderr
    with np.load(MHUBERT25 / "golden.npz") as golden:
        for stem in ("long", "short"):
            ours, reference = np.load(out / "features" / f"{stem}.npy"), golden[f"{stem}/layer2"]
            assert ours.shape == reference.shape and np.abs(ours - reference).max() < 1e-5, stem
    image = json.loads((out / "provenance.json").read_text())["runs"][0]["image"]  # which environment wrote it
    assert len(image["manifest_sha256"]) == 64 and len(image["pins_sha256"]) == 64 and "fairseq" in image["sources"]
    if container.name != "local":
        assert image["manifest"] == "/opt/textless-stack/manifest.json" and image["variant"]
    if container.name == "docker":
        assert image["container"] == "docker"
    r = container.run(["verify", "/out", "--sample", "2", "--device", "cpu", "--json", "/out/verify.json"],
                      binds=[(work, "/fx"), (out, "/out")])
    assert r.returncode == 0 and "verify: PASS: 2 files reproduce" in r.stdout, r.stdout + r.stderr
    report = json.loads((out / "verify.json").read_text())  # both files shared one padded batch: the fp32 tolerance
    assert report["tolerance"]["bytes_identical"] is False and report["differs"] == []
    assert all(f["max_abs_diff"] <= 1e-4 and f["unit_agreement"] is None for f in report["files"])
    assert ("sif" in image) is (container.name == "apptainer"), image
    if container.name == "apptainer":  # the SIF's own header is out of reach under --containall; its build date is not
        assert image["sif"]["path"].endswith(".sif") and image["sif"]["build_date"], image


def test_export_to_hugging_face_in_the_image(container, shared_dir):
    """The way out, from inside the image: the tiny 25 Hz mHuBERT exported for transformers, with its parity
    certificate; the export then loads on this side with the local transformers and gives upstream's features."""
    transformers = pytest.importorskip("transformers", reason="transformers is in the lock: make venv installs it")
    work = shared_dir("fx")
    shutil.copytree(MHUBERT25 / "wav", work / "wav")
    shutil.copy(MHUBERT25 / "tiny_mhubert25.pt", work)
    for p in work.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    out = shared_dir("out")
    r = container.run(["export", "/fx/tiny_mhubert25.pt", "/out/hf", "--audio", "/fx/wav/long.wav",
                       "/fx/wav/short.wav"], binds=[(work, "/fx"), (out, "/out")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "parity PASS" in r.stdout
    report = json.loads((out / "hf" / "parity.json").read_text())
    assert report["summary"]["per_file_max_abs_diff"] < 1e-5 and report["summary"]["batched_max_abs_diff"] > 1e-2
    model, info = transformers.HubertModel.from_pretrained(out / "hf", output_loading_info=True)
    assert not any(info.values()), info
    with np.load(MHUBERT25 / "golden.npz") as golden:
        for stem in ("long", "short"):
            wav = sf.read(MHUBERT25 / "wav" / f"{stem}.wav", dtype="float32")[0]
            import torch

            with torch.inference_mode():
                hidden = model.eval()(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states
            assert np.abs(hidden[2][0].numpy() - golden[f"{stem}/layer2"]).max() < 1e-5, stem
