"""Fixtures for the integration suites: tiny checkpoints, k-means models and audio, made per session."""

from __future__ import annotations

import pytest
from support import make_kmeans, write_audio


@pytest.fixture(scope="session")
def tiny_hubert(tmp_path_factory):
    from textless_stack.testing import tiny

    return tiny.make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_hubert.pt", "hubert", seed=7)


@pytest.fixture(scope="session")
def tiny_kmeans(tmp_path_factory):
    """A scikit-learn KMeans over 32-dim features, saved with joblib as textlesslib's are."""
    path = tmp_path_factory.mktemp("km") / "km.bin"
    return path, make_kmeans(path)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    write_audio(root, {"a.wav": 1.2, "b/c.wav": 3.0, "b/d.flac": 0.7, "e_stereo.wav": 2.0, "f.ogg": 1.5, "g.wav": 5.5})
    return root
