"""k-means units (kmeans.Quantizer) are float64's nearest centroid for every frame, though computed in float32:
frames float32 cannot decide are the ones computed again."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from textless_stack.kmeans import Quantizer

CPU = torch.device("cpu")


def exact(features: torch.Tensor, centers: np.ndarray) -> np.ndarray:
    """The reference, written independently: squared differences summed in float64."""
    x = features.double().reshape(-1, centers.shape[1])
    distances = torch.stack([((x - c) ** 2).sum(-1) for c in torch.from_numpy(centers).double()], -1)
    return distances.argmin(-1).reshape(features.shape[:-1]).numpy()


def near_ties(centers: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Frames a hair nearer one of two centroids than the other: 1e-9 of the distance, which float64
    resolves and float32 (7 digits) cannot. Half lean each way."""
    a, b = rng.integers(0, len(centers), n), rng.integers(0, len(centers), n)
    b = np.where(a == b, (b + 1) % len(centers), b)
    lean = np.where(rng.random(n) < 0.5, 1e-9, -1e-9)
    return (centers[a] + centers[b]) / 2 + lean[:, None] * (centers[a] - centers[b])


def test_units_equal_float64_including_frames_float32_cannot_decide():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(100, 768)).astype(np.float32).astype(np.float64)
    ties = near_ties(centers, rng, 300).astype(np.float32)
    kept = exact(torch.from_numpy(ties), centers) == exact(torch.from_numpy(ties.astype(np.float64)), centers)
    ties = ties[kept]  # the ones whose lean survives rounding the frame itself to float32
    plain = rng.normal(size=(5000, 768)).astype(np.float32)
    frames = torch.from_numpy(np.concatenate([plain, ties])[rng.permutation(len(plain) + len(ties))])
    batch = frames[: 5000 + len(ties) - (5000 + len(ties)) % 4].reshape(4, -1, 768)  # [B, T, dim] as from a model

    q = Quantizer(centers, CPU)
    float32_alone = (torch.from_numpy(centers.astype(np.float32) ** 2).sum(1)
                     - 2 * batch.reshape(-1, 768) @ torch.from_numpy(centers.astype(np.float32)).T).argmin(-1)
    wrong32 = int((float32_alone.numpy() != exact(batch, centers).reshape(-1)).sum())
    assert len(ties) > 150 and wrong32 > 20, "the near ties must be ones float32 alone gets wrong"

    got = q.assign(batch)
    assert got.shape == batch.shape[:2] and got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), exact(batch, centers))
    np.testing.assert_array_equal(got.numpy(), q.assign_float64(batch).numpy())
    assert wrong32 <= q.refined < len(ties) + len(plain) // 10  # the doubtful frames only are refined


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_features_get_float64_units(dtype):
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(50, 64))
    x = torch.from_numpy(rng.normal(size=(3, 200, 64)).astype(np.float32)).to(dtype)
    x[0, :10] = torch.from_numpy(near_ties(centers, rng, 10)).to(dtype)
    np.testing.assert_array_equal(Quantizer(centers, CPU).assign(x).numpy(), exact(x, centers))


def test_non_finite_frames_get_what_float64_gives_them():
    rng = np.random.default_rng(2)
    centers = rng.normal(size=(20, 16))
    x = torch.from_numpy(rng.normal(size=(40, 16)).astype(np.float32))
    x[3, 5], x[7, :], x[9, 0] = float("nan"), float("inf"), 3e38
    q = Quantizer(centers, CPU)
    np.testing.assert_array_equal(q.assign(x).numpy(), q.assign_float64(x).numpy())


def test_a_lowered_float32_matmul_precision_falls_back_to_float64(monkeypatch):
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(100, 768))
    x = torch.from_numpy(near_ties(centers, rng, 200).astype(np.float32))
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        q = Quantizer(centers, CPU)
        np.testing.assert_array_equal(q.assign(x).numpy(), q.assign_float64(x).numpy())
        assert q.refined == 0  # not the float32 path at all
    finally:
        torch.set_float32_matmul_precision(previous)


def test_under_autocast_the_units_stay_float64s():
    rng = np.random.default_rng(4)
    centers = rng.normal(size=(100, 768))
    x = torch.from_numpy(near_ties(centers, rng, 200).astype(np.float32))
    q = Quantizer(centers, CPU)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = q.assign(x)
    np.testing.assert_array_equal(got.numpy(), exact(x, centers))
