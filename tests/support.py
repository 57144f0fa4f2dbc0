"""Helpers shared by the test suites (import as `support`).

Importing this module needs only the standard library: the unit tests (`make test-unit`) run
without numpy, torch or the stack. Helpers that need them import them inside.
"""

from __future__ import annotations

import os
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

SIF_ENV = "TEXTLESS_SIF"
TEXTLESSLIB_MISSING = "textlesslib source not available"  # the one counted skip reason
LAYER = "2"  # the tiny models have 2 layers: the features tests take the top one


def write_audio(root, spec: dict) -> dict:
    """{relative path: seconds} -> files of noise+tones at 16 kHz (some at other rates/channels)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(42)
    for rel, seconds in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        rate, channels = (22050, 2) if "stereo" in rel else (16000, 1)
        n = int(seconds * rate)
        t = np.arange(n) / rate
        signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.normal(size=n)
        data = np.stack([signal, signal * 0.5], 1) if channels == 2 else signal
        sf.write(path, data.astype(np.float32), rate)
    return spec


def files_under(root: Path) -> list[str]:
    """Every file below ROOT, as sorted relative posix paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def write_tsv(path: Path, root: Path, rels) -> Path:
    """A fairseq manifest: ROOT, then `rel<TAB>frames` per file. A file soundfile cannot read still gets
    a line (16000 frames), as in a manifest written before the file went bad."""
    import soundfile as sf

    def frames(rel):
        try:
            return sf.info(root / rel).frames
        except sf.LibsndfileError:
            return 16000

    path.write_text(f"{root}\n" + "".join(f"{rel}\t{frames(rel)}\n" for rel in rels))
    return path


def cli(*args, env=None, timeout=600):
    """`textless-stack ARGS` in a subprocess of this environment."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "textless_stack.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def features(*args, **kw):
    """`textless-stack features ARGS` at LAYER, without a progress bar."""
    return cli("features", *args, "--layer", LAYER, "--no-progress", **kw)


def make_kmeans(path: Path, n_clusters: int = 12, dim: int = 32, seed: int = 0):
    """A scikit-learn KMeans over random DIM-dim features, saved with joblib as textlesslib's are."""
    import joblib
    import numpy as np
    from sklearn.cluster import KMeans

    data = np.random.default_rng(seed).normal(size=(400, dim)).astype(np.float32)
    km = KMeans(n_clusters=n_clusters, n_init=1, random_state=0).fit(data)
    joblib.dump(km, path)
    return km


# --- checkpoint vintages: each turns a current trainer state into what a fairseq of some age wrote ---


def as_args_style(state, kind="hubert"):
    """fairseq < 0.10: one argparse.Namespace under 'args', no 'cfg'."""
    cfg = state.pop("cfg")
    # argparse-era namespaces were flat: nested config groups (eval_wer_config) did not exist yet
    flat = {k: v for section in ("task", "model") for k, v in cfg[section].items()
            if k != "_name" and not isinstance(v, dict)}
    state["args"] = Namespace(**flat, task=cfg["task"]["_name"], arch=cfg["model"]["_name"],
                              criterion="hubert" if kind == "hubert" else "wav2vec", optimizer="adam", lr=[5e-4], seed=1)
    return state


def with_float_ints(state, kind="hubert"):
    """Integral floats in int fields (encoder_layers 2.0, label_rate 50.0)."""
    state["cfg"]["model"]["encoder_layers"] = 2.0
    state["cfg"]["task"]["label_rate"] = 50.0 if kind == "hubert" else state["cfg"]["task"].get("label_rate")
    return state


def with_an_old_task_key(state, kind="hubert"):
    """A task option this fairseq does not have (multiple_train_files), which it drops."""
    state["cfg"]["task"]["multiple_train_files"] = False
    return state


def with_unknown_keys(state, kind="hubert"):
    """Config keys this fairseq does not know: an older task option and a newer model option."""
    state = with_an_old_task_key(state, kind)
    state["cfg"]["model"]["pos_conv_depth"] = 1  # newer model option, at the value this fairseq computes
    return state


def with_parametrized_weight_norm(state, kind="hubert"):
    """torch >= 2.1 weight norm: the pos_conv tensors under parametrizations.weight.original{0,1}."""
    weights = state["model"]
    for suffix, new in (("weight_g", "parametrizations.weight.original0"), ("weight_v", "parametrizations.weight.original1")):
        weights[f"encoder.pos_conv.0.{new}"] = weights.pop(f"encoder.pos_conv.0.{suffix}")
    return state


VINTAGES = {
    "trainer-cfg": lambda state, kind="hubert": state,
    "args-namespace": as_args_style,
    "integral-floats": with_float_ints,
    "unknown-config-keys": with_unknown_keys,
    "parametrized-weight-norm": with_parametrized_weight_norm,
}


def legacy_checkpoint(path: Path, *vintages, kind: str = "hubert", seed: int = 11) -> Path:
    """A tiny checkpoint as an older fairseq wrote it: a trainer state with each vintage applied."""
    from textless_stack.testing import tiny

    model, task, cfg = tiny.build(kind, seed=seed)
    state = tiny.trainer_state(model, task, cfg)
    for vintage in vintages:
        state = vintage(state, kind)
    return tiny.save(state, path)


def built_sif():
    """(SIF path, apptainer state dir) of the SIF `make test` built; skips when this run built none."""
    import pytest

    sif = os.environ.get(SIF_ENV)
    if not sif:
        pytest.skip(f"no SIF built in this run ({SIF_ENV} unset): `make test` builds one")
    if not Path(sif).is_file():
        pytest.fail(f"{SIF_ENV}={sif} does not exist")
    return sif, os.environ.get("TEXTLESS_APPTAINER_STATE", str(Path(sif).parent / "apptainer"))
