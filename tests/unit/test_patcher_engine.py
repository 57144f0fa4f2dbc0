"""The engine: counted, loud on mismatch, idempotent, reported."""

import json
from pathlib import Path

import pytest
from patcher import PatchMismatch, Project, Transform, UnknownFlavour, apply
from patcher.__main__ import main as patcher_main

SAMPLE = "import torch\n\nx = old_call(1)\ny = old_call(2)\n"


def project(*transforms, detect=lambda root: "v1"):
    return Project(name="sample", detect=detect, transforms=transforms)


def literal(count=2, **kw):
    return Transform(name="rename-call", path="pkg/mod.py", find="old_call(", replace="new_call(", count={"v1": count}, **kw)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SAMPLE)
    return tmp_path


def test_applies_and_reports(tree):
    report = apply(project(literal()), tree)
    assert (tree / "pkg" / "mod.py").read_text() == SAMPLE.replace("old_call(", "new_call(")
    (entry,) = report["files"]
    assert entry["sha256_before"] != entry["sha256_after"]
    assert entry["transforms"] == [{"name": "rename-call", "places": 2, "status": "applied"}]
    assert report["transforms_applied"] == 1 and report["files_changed"] == 1


def test_second_run_changes_nothing_and_says_so(tree):
    apply(project(literal()), tree)
    after_first = (tree / "pkg" / "mod.py").read_text()
    report = apply(project(literal()), tree)
    assert (tree / "pkg" / "mod.py").read_text() == after_first
    assert report["files_changed"] == 0
    assert report["transforms_already_applied"] == 1 and report["transforms_applied"] == 0


@pytest.mark.parametrize("count", [1, 3])
def test_wrong_count_fails_loudly_and_writes_nothing(tree, count):
    with pytest.raises(PatchMismatch) as e:
        apply(project(literal(count=count)), tree)
    assert "pkg/mod.py" in str(e.value) and "old_call(" in str(e.value) and "found 2" in str(e.value)
    assert (tree / "pkg" / "mod.py").read_text() == SAMPLE


def test_upstream_text_gone_fails(tree):
    (tree / "pkg" / "mod.py").write_text("x = renamed_upstream(1)\n")
    with pytest.raises(PatchMismatch, match="expected 2 place"):
        apply(project(literal()), tree)


def test_a_failing_transform_leaves_the_whole_file_untouched(tree):
    ok = literal()
    bad = Transform(name="missing", path="pkg/mod.py", find="not there", replace="patched_here()", count={"v1": 1})
    with pytest.raises(PatchMismatch):
        apply(project(ok, bad), tree)
    assert (tree / "pkg" / "mod.py").read_text() == SAMPLE


def test_missing_file_fails(tree):
    t = Transform(name="t", path="pkg/absent.py", find="a", replace="b", count={"v1": 1})
    with pytest.raises(PatchMismatch, match="file not found"):
        apply(project(t), tree)


def test_flavour_not_listed_is_not_patched(tree):
    t = Transform(name="only-v2", path="pkg/absent.py", find="a", replace="b", count={"v2": 1})
    report = apply(project(t), tree)
    assert report["files"] == []


def test_regex_transform_with_done_pattern(tree):
    t = Transform(
        name="re", path="pkg/mod.py", find=r"old_call\((\d)\)", replace=r"new_call(\1, safe=True)",
        done=r"new_call\(\d, safe=True\)", regex=True, count={"v1": 2},
    )
    apply(project(t), tree)
    assert "new_call(2, safe=True)" in (tree / "pkg" / "mod.py").read_text()
    assert apply(project(t), tree)["transforms_already_applied"] == 1


def test_broken_transform_is_caught(tree):
    t = Transform(name="bad-done", path="pkg/mod.py", find="old_call(", replace="new_call(", done="never", count={"v1": 2})
    with pytest.raises(Exception, match="does not match its own"):
        apply(project(t), tree)


def test_unknown_flavour(tree):
    def detect(root):
        raise UnknownFlavour("not a sample tree")

    with pytest.raises(UnknownFlavour):
        apply(project(literal(), detect=detect), tree)


def test_patch_breaks_hardlinks_instead_of_writing_through(tree):
    # uv installs files as hardlinks into its cache: patching must not alter the cache copy
    original = tree / "pkg" / "mod.py"
    cache_copy = tree / "cache_copy.py"
    cache_copy.hardlink_to(original)
    apply(project(literal()), tree)
    assert cache_copy.read_text() == SAMPLE


def test_cli_exit_codes_and_report(tree, tmp_path, capsys):
    # the CLI knows only the real projects: a fairseq-shaped tree that does not match must fail
    (tree / "fairseq").mkdir()
    (tree / "fairseq" / "version.txt").write_text("1.0.0a0\n")
    assert patcher_main(["fairseq", str(tree), "--report", str(tmp_path / "r.json")]) == 1
    assert "FAILED" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
    (tree / "fairseq" / "version.txt").write_text("9.9.9\n")
    assert patcher_main(["fairseq", str(tree)]) == 1
    assert "not one the patch table knows" in capsys.readouterr().err
