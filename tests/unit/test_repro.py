"""env/repro.py, the comparison behind `make repro-check`: what it catches and what it only reports."""

import json
import os
import subprocess
import sys
from pathlib import Path

import repro

REPO = Path(__file__).resolve().parents[2]


def a_root(tmp_path: Path, name: str) -> Path:
    """A small filesystem: a venv, our files, and something of the base's."""
    root = tmp_path / name
    site = root / "opt/venv/lib/python3.10/site-packages/pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("x = 1\n")
    (site / "mod.pyc").write_bytes(b"\x6f\x0d\x0d\x0a" + b"\0" * 12)
    (root / "opt/venv/bin").mkdir(parents=True)
    os.symlink("python3.10", root / "opt/venv/bin/python")
    ours = root / "opt/textless-stack"
    ours.mkdir(parents=True)
    (ours / "manifest.json").write_text(json.dumps({"revision": "abc", "patches": {"fairseq": {"files_changed": 18}}}))
    (ours / "hydra-patch-report.json").write_text(json.dumps({"files_changed": 3}))
    (root / "etc").mkdir()
    (root / "etc/shadow").write_text("textless:!:20425:0:99999:7:::\n")
    (root / "tmp").mkdir()
    (root / "tmp/uv-1234.lock").write_text("")
    return root


def compared(tmp_path, change=lambda root: None):
    a, b = a_root(tmp_path, "a"), a_root(tmp_path, "b")
    change(b)
    return repro.compare(repro.inventory(str(a)), repro.inventory(str(b)))


def test_two_equal_trees_are_identical(tmp_path):
    report = compared(tmp_path)
    assert report["identical"] and report["differ"] == [] and report["outside_scope"] == []
    assert report["compared"] >= 8  # files, directories and the link


def test_paths_are_named_as_inside_the_image(tmp_path):
    files = repro.inventory(str(a_root(tmp_path, "a")))["files"]
    assert "/opt/venv/lib/python3.10/site-packages/pkg/__init__.py" in files
    assert files["/opt/venv/bin/python"].endswith("-> python3.10")
    assert not any(p.startswith("/tmp") for p in files), "scratch is not part of a build"


def test_one_changed_byte_in_a_pyc_fails(tmp_path):
    report = compared(tmp_path, lambda b: (b / "opt/venv/lib/python3.10/site-packages/pkg/mod.pyc").write_bytes(
        b"\x6f\x0d\x0d\x0a" + b"\0" * 11 + b"\1"))
    assert not report["identical"]
    assert [d["path"] for d in report["differ"]] == ["/opt/venv/lib/python3.10/site-packages/pkg/mod.pyc"]


def test_a_mode_a_link_and_an_extra_file_fail(tmp_path):
    def change(b):
        os.chmod(b / "opt/venv/lib/python3.10/site-packages/pkg/__init__.py", 0o600)
        os.remove(b / "opt/venv/bin/python")
        os.symlink("python3.11", b / "opt/venv/bin/python")
        (b / "opt/textless-stack/extra.txt").write_text("")

    report = compared(tmp_path, change)
    assert {d["path"] for d in report["differ"]} == {
        "/opt/venv/lib/python3.10/site-packages/pkg/__init__.py", "/opt/venv/bin/python",
        "/opt/textless-stack/extra.txt"}
    assert next(d for d in report["differ"] if d["path"].endswith("extra.txt"))["a"] == "(absent)"


def test_a_changed_manifest_and_patch_report_are_named_by_key(tmp_path):
    def change(b):
        (b / "opt/textless-stack/manifest.json").write_text(
            json.dumps({"revision": "abc", "patches": {"fairseq": {"files_changed": 17}}}))
        (b / "opt/textless-stack/hydra-patch-report.json").write_text(json.dumps({"files_changed": 4}))

    report = compared(tmp_path, change)
    assert report["manifest"] == ["patches.fairseq.files_changed"]
    assert report["patch_reports"] == {"/opt/textless-stack/hydra-patch-report.json": ["files_changed"]}
    assert not report["identical"]


def test_outside_the_scope_is_reported_not_failed(tmp_path):
    report = compared(tmp_path, lambda b: (b / "etc/shadow").write_text("textless:!:20426:0:99999:7:::\n"))
    assert report["identical"]
    assert [d["path"] for d in report["outside_scope"]] == ["/etc/shadow"]


def test_a_different_freeze_fails():
    base = {"files": {}, "manifest": {}, "patch_reports": {}}
    report = repro.compare({**base, "freeze": ["torch==2.6.0"]}, {**base, "freeze": ["torch==2.6.1"]})
    assert not report["identical"]
    assert (report["freeze"]["a_only"], report["freeze"]["b_only"]) == (["torch==2.6.0"], ["torch==2.6.1"])


def test_compare_command_exits_1_and_names_the_file(tmp_path):
    a, b = a_root(tmp_path, "a"), a_root(tmp_path, "b")
    (b / "opt/venv/lib/python3.10/site-packages/pkg/__init__.py").write_text("x = 2\n")
    for name, root in (("a", a), ("b", b)):
        (tmp_path / f"{name}.json").write_text(json.dumps(repro.inventory(str(root))))
    run = subprocess.run([sys.executable, str(REPO / "env/repro.py"), "compare", str(tmp_path / "a.json"),
                          str(tmp_path / "b.json"), "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "pkg/__init__.py" in run.stdout and "result: DIFFERENT" in run.stdout
    assert json.loads((tmp_path / "r.json").read_text())["identical"] is False
    missing = subprocess.run([sys.executable, str(REPO / "env/repro.py"), "compare", str(tmp_path / "nope.json"),
                              str(tmp_path / "b.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.json" in missing.stderr


def test_inventory_runs_from_stdin_as_in_an_image(tmp_path):
    """`python - inventory ROOT < env/repro.py`, as repro-check runs it inside an image or a SIF."""
    root = a_root(tmp_path, "a")
    run = subprocess.run([sys.executable, "-", "inventory", str(root)], stdin=open(REPO / "env/repro.py"),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["manifest"]["revision"] == "abc"
