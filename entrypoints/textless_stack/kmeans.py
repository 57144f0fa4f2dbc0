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
    """Nearest-centroid assignment, in float64 on the model's device (sklearn's predict, exactly)."""

    def __init__(self, centers: np.ndarray, device: torch.device):
        dtype = torch.float64 if device.type != "mps" else torch.float32
        self.centers = torch.from_numpy(np.asarray(centers)).to(device=device, dtype=dtype)
        self.center_sq = (self.centers ** 2).sum(1)

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
        """Units of features [..., dim], on the centroids' device and left there (no copy back, no sync)."""
        x = features.to(device=self.centers.device, dtype=self.centers.dtype)
        distances = (x ** 2).sum(-1, keepdim=True) - 2 * x @ self.centers.T + self.center_sq
        return distances.argmin(-1)


def deduplicate(units: np.ndarray) -> tuple[list[int], list[int]]:
    """Run-length encode: (units with repeats collapsed, how many frames each lasted)."""
    if units.size == 0:
        return [], []
    change = np.flatnonzero(np.diff(units)) + 1
    starts = np.concatenate([[0], change])
    durations = np.diff(np.concatenate([starts, [units.size]]))
    return units[starts].tolist(), durations.tolist()
