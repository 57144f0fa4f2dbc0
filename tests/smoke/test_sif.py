"""The SIF, as clusters use it: self-test, help and labels, read-only, and the same numbers as Docker."""

from __future__ import annotations

import subprocess

import pins
from support import write_audio


def test_apptainer_test_passes(sif_runner):
    r = subprocess.run(sif_runner.command("test", "--userns", sif_runner.sif), capture_output=True, text=True,
                       timeout=900)
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


def test_the_sif_is_read_only_and_the_job_never_writes_into_it(sif_runner, shared_dir, tmp_path):
    probe = sif_runner.run(["-c", "touch /opt/venv/probe"], entrypoint="sh")
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    home = sif_runner.run(["-c", 'touch "$HOME/probe" 2>/dev/null && echo writable || echo not-writable'],
                          entrypoint="sh")
    assert home.stdout.strip() == "not-writable"
    from textless_stack import tiny

    ckpt = shared_dir("ckpt")
    tiny.make_checkpoint(ckpt / "m.pt", seed=2)
    audio = shared_dir("in")
    write_audio(audio, {"a.wav": 1.0})
    out = shared_dir("out")
    r = sif_runner.run(["features", "/in", "-o", "/out", "--model", "/ckpt/m.pt", "--layer", "2", "--no-progress"],
                       binds=[(audio, "/in"), (out, "/out"), (ckpt, "/ckpt")])
    assert r.returncode == 0, r.stderr  # any write outside /tmp and the binds would have failed it


def test_outputs_are_bit_identical_to_docker(sif_runner, docker_runner, shared_dir):
    from textless_stack import tiny

    ckpt = shared_dir("ckpt")
    model, task, cfg = tiny.build("hubert", seed=4)
    state = tiny.trainer_state(model, task, cfg)
    state["cfg"]["model"]["encoder_layers"] = 2.0  # a legacy vintage: integral float in an int field
    tiny.save(state, ckpt / "legacy.pt")
    (ckpt / "legacy.pt").chmod(0o644)
    audio = shared_dir("in")
    write_audio(audio, {"x.wav": 2.2, "y/z.flac": 1.1})
    for p in audio.rglob("*"):
        p.chmod(0o777 if p.is_dir() else 0o644)
    outputs = {}
    for runner in (docker_runner, sif_runner):
        out = shared_dir(f"out-{runner.name}")
        r = runner.run(["features", "/in", "-o", "/out", "--model", "/ckpt/legacy.pt", "--layer", "2",
                        "--features", "dump", "--no-progress"], binds=[(audio, "/in"), (out, "/out"), (ckpt, "/ckpt")])
        assert r.returncode == 0, (runner.name, r.stderr)
        outputs[runner.name] = {p.name: p.read_bytes() for p in out.glob("all_0_1.*")}
    assert set(outputs["docker"]) == {"all_0_1.npy", "all_0_1.len", "all_0_1.done.json"}
    assert outputs["docker"] == outputs["apptainer"]
