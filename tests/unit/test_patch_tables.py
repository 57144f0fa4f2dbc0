"""Every transform of every table, on small samples of the upstream text it expects."""

import re

import pytest
from patcher import PROJECTS, PatchMismatch, Project, apply
from patcher.common import MARK

CASES = [
    (project, flavour, t)
    for project in PROJECTS.values()
    for t in project.transforms
    for flavour in t.count
]


def ids(case):
    project, flavour, t = case
    return f"{project.name}-{flavour}-{t.name}"


def sample_tree(tmp_path, t, places):
    path = tmp_path / t.path
    path.parent.mkdir(parents=True, exist_ok=True)
    # unrelated lines around each place, as in a real file
    path.write_text("".join(f"# before {i}\n{t.sample()}# after {i}\n" for i in range(places)))
    return path


def single(t, flavour):
    return Project(name="sample", detect=lambda root: flavour, transforms=[t])


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_transform_applies_once_and_only_once(tmp_path, case):
    _, flavour, t = case
    places = t.count[flavour]
    path = sample_tree(tmp_path, t, places)
    report = apply(single(t, flavour), tmp_path)
    text = path.read_text()
    assert report["transforms_applied"] == 1
    assert len(re.findall(t.done or re.escape(t.replace), text, re.M)) >= places
    assert apply(single(t, flavour), tmp_path)["transforms_already_applied"] == 1
    assert path.read_text() == text


@pytest.mark.parametrize("case", [c for c in CASES if c[2].count[c[1]] > 0], ids=ids)
def test_transform_fails_on_a_mismatch(tmp_path, case):
    _, flavour, t = case
    places = t.count[flavour]
    sample_tree(tmp_path, t, places + 1)  # upstream grew another place: must not be half-patched
    with pytest.raises(PatchMismatch, match=re.escape(t.name)):
        apply(single(t, flavour), tmp_path)


def self_evident(t) -> bool:
    """A change that needs no mark: an edit inside one line (neither the upstream text nor the replacement
    spans lines: `np.float` -> `float`, a keyword added, `torch.load(` -> `torch_load(`), which the changed
    line shows whole, or one in a file that is not Python source (requirements.txt, whose lines are data)."""
    one_line = "\n" not in t.sample().rstrip("\n") and "\n" not in t.replace.rstrip("\n")
    return one_line or not t.path.endswith(".py")


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_every_change_is_marked_or_self_evident(tmp_path, case):
    """Every place a transform changes carries `# textless-stack: <why>` in the patched file, unless the
    change is self-evident."""
    _, flavour, t = case
    assert t.name and t.count, t
    if t.regex:
        assert t.example, f"{t.name}: regex transforms carry an example of upstream text"
    if MARK not in t.replace:
        assert self_evident(t), f"{t.name}: a change of more than one line must carry `{MARK} <why>`"
        return
    places = t.count[flavour]
    path = sample_tree(tmp_path, t, places)
    apply(single(t, flavour), tmp_path)
    marks = re.findall(re.escape(MARK) + r" \S", path.read_text())
    assert len(marks) >= places, f"{t.name}: {len(marks)} of its {places} place(s) carry `{MARK} <why>`"


def test_fairseq_covers_both_flavours():
    flavours = {f for t in PROJECTS["fairseq"].transforms for f in t.count}
    assert flavours == {"dd106d9", "0.12.2"}
