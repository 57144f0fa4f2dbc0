"""The out-of-memory fallback: a batch the device cannot hold is retried file by file, and a file that still
does not fit fails alone. Forced here on CPU: DenseEncoder.encode raises CUDA's out-of-memory error."""

from __future__ import annotations

import json

import numpy as np
from support import LAYER, write_audio

from textless_stack.encoder import DenseEncoder
from textless_stack.jobs import FeaturesSpec, features

SPEC = {"a.wav": 1.0, "b.wav": 1.5, "c.wav": 2.0, "long.wav": 3.0}
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


def run(tmp_path, name, tiny_hubert, **kw):
    return features(FeaturesSpec(inputs=(str(tmp_path / "corpus"),), output=tmp_path / name, model=str(tiny_hubert),
                                 layer=int(LAYER), device="cpu", batch_seconds=100, progress=False, workers=0,
                                 **kw))


def test_a_batch_that_does_not_fit_is_retried_file_by_file(tmp_path, tiny_hubert, monkeypatch, caplog):
    write_audio(tmp_path / "corpus", SPEC)
    assert run(tmp_path, "reference", tiny_hubert).failed == 0
    real = DenseEncoder.encode
    sizes = []

    def encode(self, chunks):
        sizes.append(len(chunks))
        if len(chunks) > 1 or chunks[0].numel() > 2.5 * 16000:
            raise RuntimeError(OOM)
        return real(self, chunks)

    monkeypatch.setattr(DenseEncoder, "encode", encode)
    summary = run(tmp_path, "out", tiny_hubert)
    assert sizes[0] == len(SPEC) and set(sizes[1:]) == {1}  # one batch of all four, then one by one
    assert "retrying one by one" in caplog.text
    assert summary.failed == 1 and summary.failures[0][0] == "long.wav"
    assert summary.failures[0][1].startswith(f"model failed: {OOM}")
    errors = [json.loads(x) for x in (tmp_path / "out" / "all_0_1.errors.jsonl").read_text().splitlines()]
    assert [e["path"] for e in errors] == ["long.wav"]
    for name in ("a", "b", "c"):
        got, ref = (np.load(tmp_path / d / "features" / f"{name}.npy") for d in ("out", "reference"))
        assert np.abs(got - ref).max() < 1e-5, name
