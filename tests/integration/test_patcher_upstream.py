"""The patcher on fresh copies of the real upstream trees this build fetched."""

import py_compile
import shutil

import pytest
from patcher import PROJECTS, apply


def fresh_copy(src, tmp_path):
    dest = tmp_path / src.name
    shutil.copytree(src, dest, symlinks=True)
    return dest


def check_twice(project, tree):
    first = apply(project, tree)
    assert first["transforms_already_applied"] == 0, "a transform looked applied on pristine upstream"
    assert first["transforms_applied"] == len([t for t in project.transforms if first["flavour"] in t.count])
    for entry in first["files"]:
        assert entry["sha256_before"] != entry["sha256_after"], entry["path"]
        if entry["path"].endswith(".py"):
            py_compile.compile(str(tree / entry["path"]), doraise=True, cfile=str(tree / "compiled.pyc"))
    snapshot = {e["path"]: (tree / e["path"]).read_text() for e in first["files"]}
    second = apply(project, tree)
    assert second["files_changed"] == 0 and second["transforms_applied"] == 0
    assert second["transforms_already_applied"] == first["transforms_applied"]
    assert {p: (tree / p).read_text() for p in snapshot} == snapshot
    return first


def test_fairseq_pristine_tree(build_dir, tmp_path):
    report = check_twice(PROJECTS["fairseq"], fresh_copy(build_dir / "src" / "fairseq-pristine", tmp_path))
    assert report["flavour"] in ("dd106d9", "0.12.2")


def test_hydra_pristine_package(build_dir, tmp_path):
    pristine = next((build_dir / f"py{v}" / "pristine" for v in ("3.11", "3.12") if (build_dir / f"py{v}" / "pristine").is_dir()), None)
    if pristine is None:
        pytest.skip("no Python 3.11/3.12 check environment was built")
    report = check_twice(PROJECTS["hydra"], fresh_copy(pristine, tmp_path))
    assert report["flavour"] == "1.0.7"


def test_textlesslib_pristine_tree(textlesslib_pristine, tmp_path):
    tree = fresh_copy(textlesslib_pristine, tmp_path)
    check_twice(PROJECTS["textlesslib"], tree)
    requirements = (tree / "requirements.txt").read_text().split()
    assert "numba" in requirements and "numba==0.53.0" not in requirements and "pytest" not in requirements


def test_fairseq_tree_with_drifted_upstream_fails(build_dir, tmp_path):
    tree = fresh_copy(build_dir / "src" / "fairseq-pristine", tmp_path)
    configs = tree / "fairseq" / "dataclass" / "configs.py"
    configs.write_text(configs.read_text().replace("    bmuf: FairseqBMUFConfig = FairseqBMUFConfig()\n", ""))
    with pytest.raises(Exception, match="fairseq-config-defaults"):
        apply(PROJECTS["fairseq"], tree)
