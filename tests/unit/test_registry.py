"""The registry is the one place for model facts; the README's model table must say the same."""

from __future__ import annotations

import re
from pathlib import Path

from textless_stack import registry

README = Path(__file__).resolve().parents[2] / "README.md"


def model_rows() -> dict[str, list[str]]:
    text = README.read_text()
    table = text[text.index("### Models"):].split("\n\n")[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {row[0].strip("`"): row for row in rows}


def test_every_dense_model_has_a_row_with_its_frame_rate_and_layer():
    rows = model_rows()
    dense = {n: m for n, m in registry.MODELS.items() if m.kind == "dense"}
    assert set(rows) == set(dense)
    for name, m in dense.items():
        assert rows[name][1] == f"{16000 // m.hop} Hz", name
        assert re.match(rf"layer {m.layer}\b", rows[name][2]), name


def test_every_kmeans_and_vocoder_belongs_to_a_dense_model_in_the_registry():
    for name, m in registry.MODELS.items():
        if m.kind == "kmeans":
            assert registry.MODELS[m.dense].kind == "dense" and name.startswith(m.dense.split("-layer-")[0]), name
        if m.kind in ("tacotron", "hifigan"):
            assert registry.MODELS[registry.vocoder_kmeans(name)].kind == "kmeans", name


def test_every_vocoder_set_and_unit_lm_is_named_in_the_readme_table():
    rows = model_rows()
    for name, m in registry.MODELS.items():
        if m.kind not in ("tacotron", "hifigan", "ulm") or m.unsupported:
            continue
        dense = registry.MODELS[m.kmeans if m.kind == "ulm" else registry.vocoder_kmeans(name)].dense
        column = rows[dense][5 if m.kind == "ulm" else 4]
        if not name.startswith(dense):  # TWIST's LMs have names of their own
            assert f"`{name}`" in column, name
            continue
        suffix = name[len(dense):]
        k = re.search(r"kmeans-(\d+)-(tacotron|ulm)$", suffix)
        shorthand = k and re.search(rf"-kmeans-[\d/]*\b{k.group(1)}\b[\d/]*-{k.group(2)}", column)
        assert suffix in column or shorthand, name


def test_unit_lms_belong_to_a_kmeans_or_say_why_not():
    lms = {n: m for n, m in registry.MODELS.items() if m.kind == "ulm"}
    assert len(lms) == 15 and not any(m.sha256 for m in lms.values())  # GSLM and TWIST publish no digests
    for name, m in lms.items():
        named = name == f"{m.kmeans}-ulm" or name.startswith("twist-")
        assert (registry.MODELS[m.kmeans].kind == "kmeans" and named) if m.kmeans else m.unsupported
