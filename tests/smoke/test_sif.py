"""The SIF, as clusters use it: self-test, help and labels, read-only, and the same numbers as Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import pins

REPO = Path(__file__).resolve().parents[2]


def test_apptainer_test_passes(sif_runner):
    r = sif_runner.self_test  # run once per session: test_in_image.py's doctor and selftest checks read it too
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "healthy" in r.stdout and "FAIL" not in r.stdout and r.stdout.count("ok  ") >= 4


def test_run_help_and_inspect_show_help_and_pins(sif_runner):
    help_text = subprocess.run(sif_runner.command("run-help", sif_runner.sif), capture_output=True, text=True).stdout
    assert "--nv" in help_text and "TEXTLESS_STACK_MODELS" in help_text and "login node" in help_text
    labels = subprocess.run(sif_runner.command("inspect", "--labels", sif_runner.sif), capture_output=True,
                            text=True).stdout
    p = pins.load()
    assert p["sources"]["fairseq"]["commit"] in labels and p["sources"]["textlesslib"]["commit"] in labels
    assert f"org.textless-stack.omegaconf: {p['runtime']['omegaconf']}" in labels
    assert "org.textless-stack.standins" in labels and "org.textless-stack.base" in labels
    apps = subprocess.run(sif_runner.command("inspect", "--list-apps", sif_runner.sif), capture_output=True,
                          text=True).stdout.split()
    assert {"features", "resynth", "merge", "models", "doctor"} <= set(apps)


def test_the_sif_is_read_only_and_home_is_not_writable(sif_runner):
    """What lets test_in_image.py::test_nothing_is_written_outside_tmp_and_binds[apptainer] fail on a stray
    write (that test runs the job in the SIF; it is not run a second time here)."""
    probe = sif_runner.run(["-c", "touch /opt/venv/probe"], entrypoint="sh")
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    home = sif_runner.run(["-c", 'touch "$HOME/probe" 2>/dev/null && echo writable || echo not-writable'],
                          entrypoint="sh")
    assert home.stdout.strip() == "not-writable"


def test_outputs_are_bit_identical_to_docker(sif_runner, docker_runner, legacy_checkpoints, shared_audio, shared_dir):
    audio = shared_audio("in", {"x.wav": 2.2, "y/z.flac": 1.1})
    outputs = {}
    for runner in (docker_runner, sif_runner):
        out = shared_dir(f"out-{runner.name}")
        r = runner.run(["features", "/in", "-o", "/out", "--model", "/ckpt/legacy.pt", "--layer", "2",
                        "--features", "dump", "--no-progress"],
                       binds=[(audio, "/in"), (out, "/out"), (legacy_checkpoints, "/ckpt")])
        assert r.returncode == 0, (runner.name, r.stderr)
        outputs[runner.name] = {p.name: p.read_bytes() for p in out.glob("all_0_1.*")}
    assert set(outputs["docker"]) == {"all_0_1.npy", "all_0_1.len", "all_0_1.done.json"}
    assert outputs["docker"] == outputs["apptainer"]


def test_a_sif_build_without_the_disk_for_it_stops_at_once_and_names_the_place(docker_runner, tmp_path):
    """A disk that fills half-way through a ten-minute SIF build (a CI run once ended in `copy_file_range: no
    space left on device`) is caught before `docker save`: one line with the directory, free and needed space."""
    if os.geteuid() != 0:
        pytest.skip("a small filesystem for the build's scratch needs root (mount -t tmpfs)")
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(state)], check=True)
    try:
        r = subprocess.run([str(REPO / "apptainer/build.sh"), docker_runner.image, str(state / "x.sif"), str(state)],
                           capture_output=True, text=True, timeout=300)
        left = sorted(p.name for p in state.iterdir())
    finally:
        subprocess.run(["umount", str(state)], check=True)
    assert r.returncode == 1, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("sif: not enough free disk") and str(state) in last and "GiB needed" in last, last
    assert left == [], f"nothing written before the check: {left}"
