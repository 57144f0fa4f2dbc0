"""k-means quantizers: centroids read without running pickled code, assignment in torch.

textlesslib's quantizers are joblib-pickled scikit-learn KMeans objects. Unpickling those runs
whatever the file says; here a restricted unpickler maps the KMeans class to an inert record,
accepts numpy arrays and nothing else, and keeps only `cluster_centers_`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from .checkpoint_policy import UnsafeCheckpoint

_KMEANS_CLASS = re.compile(r"^sklearn\.cluster\.(_kmeans|k_means_)$")
_NUMPY = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _Inert:
    """Stands in for an estimator class: records its state, runs nothing."""

    def __setstate__(self, state):
        self.state = state


def _unpickler_class():
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class Restricted(NumpyUnpickler):
        def find_class(self, module, name):
            if _KMEANS_CLASS.match(module) and name in ("KMeans", "MiniBatchKMeans"):
                return _Inert
            if (module, name) in _NUMPY or (module == "joblib.numpy_pickle" and name == "NumpyArrayWrapper"):
                return {"NumpyArrayWrapper": NumpyArrayWrapper}.get(name) or super().find_class(module, name)
            raise UnsafeCheckpoint(f"refused to unpickle global {module}.{name}: not part of a k-means model")

    return Restricted


def read_centroids(path: Path) -> np.ndarray:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _unpickler_class()(str(path), f).load()
    except UnsafeCheckpoint as e:
        raise UnsafeCheckpoint(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise UnsafeCheckpoint(f"{path}: not a readable k-means model: {type(e).__name__}: {e}") from None
    centers = obj.state.get("cluster_centers_") if isinstance(obj, _Inert) else None
    if not isinstance(centers, np.ndarray) or centers.ndim != 2:
        raise UnsafeCheckpoint(f"{path}: no cluster_centers_ in it: not a k-means model")
    return centers


class Quantizer:
    """Nearest-centroid assignment on the model's device, equal to float64's (sklearn's predict, exactly).

    Distances are computed in float32 (2-4x faster than float64 on CPU, and on most GPUs far more); a frame
    whose two nearest centroids are closer than float32's rounding error bound (`_margin`) is computed again
    in float64. Every other frame's nearest centroid is the same in exact arithmetic, in float32 and in
    float64, so the units are float64's for every frame."""

    def __init__(self, centers: np.ndarray, device: torch.device):
        dtype = torch.float64 if device.type != "mps" else torch.float32
        self.centers = torch.from_numpy(np.asarray(centers)).to(device=device, dtype=dtype)
        self.center_sq = (self.centers ** 2).sum(1)
        self.centers32 = self.centers.float()
        self.center_sq32 = (self.centers32 ** 2).sum(1)
        self.center_norm_max = float(self.center_sq.max().sqrt()) if self.size else 0.0
        self.refined = 0  # frames computed again in float64 (figures for benchmarks)

    @property
    def size(self) -> int:
        return self.centers.shape[0]

    @property
    def dim(self) -> int:
        return self.centers.shape[1]

    @torch.inference_mode()
    def __call__(self, features: torch.Tensor) -> np.ndarray:
        return self.assign(features).cpu().numpy()

    @torch.inference_mode()
    def assign(self, features: torch.Tensor) -> torch.Tensor:
        """Units of features [..., dim], on the centroids' device and left there (no copy back, no sync
        other than one per call for the frames to refine)."""
        if (self.centers.dtype != torch.float64 or features.dtype == torch.float64 or self.size < 2
                or not _float32_matmul_is_exact(self.centers)):
            return self.assign_float64(features)
        x = features.to(device=self.centers.device, dtype=torch.float32)  # exact from bf16/fp16/fp32
        flat = x.reshape(-1, self.dim)
        # ||x||^2 is the same for every centroid: left out of the distances, needed for the margin only
        distances = torch.addmm(self.center_sq32, flat, self.centers32.T, alpha=-2)
        nearest, units = distances.min(-1)
        distances.scatter_(1, units[:, None], float("inf"))
        gap = distances.min(-1).values - nearest
        # NaN or inf compare false: those frames are refined too, and get what float64 gives them
        doubtful = ~(gap > 2 * self._margin((flat ** 2).sum(-1)))
        where = doubtful.nonzero()[:, 0]
        if where.numel():
            self.refined += where.numel()
            units[where] = self.assign_float64(flat[where])
        return units.reshape(x.shape[:-1])

    def _margin(self, sq: torch.Tensor) -> torch.Tensor:
        """A bound on |float32 - exact| of one distance ||c||^2 - 2 x.c, with m = ||x|| + max ||c||: a sum of n
        products is off by at most n*u*|x|.|c| in any order (Higham, Accuracy and Stability, 3.1), so
        ||c||^2 summed in float32 by n*u*m^2 and addmm (dot product plus the bias) by (n+1)*u*m^2; rounding the
        centroids to float32 adds 3u*m^2. (2n + 16)*u*m^2 covers these with room for the higher-order terms; a
        gap above twice it also leaves float64's own error (about 2n * 1e-16 * m^2) far behind."""
        u = torch.finfo(torch.float32).eps / 2
        return (2 * self.dim + 16) * u * (sq.clamp(min=0).sqrt() + self.center_norm_max) ** 2

    @torch.inference_mode()
    def assign_float64(self, features: torch.Tensor) -> torch.Tensor:
        x = features.to(device=self.centers.device, dtype=self.centers.dtype)
        distances = (x ** 2).sum(-1, keepdim=True) - 2 * x @ self.centers.T + self.center_sq
        return distances.argmin(-1)


def _float32_matmul_is_exact(like: torch.Tensor) -> bool:
    """True float32 products: not TF32 on CUDA, nor bf16 where float32 matmul precision was lowered, nor
    under autocast (float64 is never autocast)."""
    if torch.get_float32_matmul_precision() != "highest" or torch.is_autocast_enabled(like.device.type):
        return False
    return not (like.device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32)


def deduplicate(units: np.ndarray) -> tuple[list[int], list[int]]:
    """Run-length encode: (units with repeats collapsed, how many frames each lasted)."""
    if units.size == 0:
        return [], []
    change = np.flatnonzero(np.diff(units)) + 1
    starts = np.concatenate([[0], change])
    durations = np.diff(np.concatenate([starts, [units.size]]))
    return units[starts].tolist(), durations.tolist()
