"""GSLM's CPC (cpc-big-ll6k): textlesslib's CpcFeatureReader, with its model loaded strictly and safely.

textlesslib's `load_cpc_model` unpickles the file fully (`torch.load`) and loads the weights with
`strict=False`. Here the file is unpickled under the allowlist, and every key must be consumed,
except one documented set: the saved model has `nLevelsGRU` LSTM layers, and textlesslib reads
features after the first `layer` of them (2 for cpc-big-ll6k), so the deeper layers' weights are
unused by design. They are named in the log; any other missing, extra or misshapen key is an error.

Features are then textlesslib's own `CpcFeatureReader.get_features`: one file per pass, in its
64000-sample chunks, except the last pass, which upstream runs over the whole file and keeps the tail
of (its slice `x[:, -max_chunk:]` cuts the channel axis). Where that would repeat a whole file's
features (a tail shorter than a frame) the file fails, named. Batching is not exact (the convolutions
pad, and the LSTM would need packed sequences), so this encoder never batches.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from . import precision
from .errors import UserError
from .loader import CheckpointError

log = logging.getLogger(__name__)

HOP = 160            # samples per frame at 16 kHz (textlesslib's code_hop_size)
MAX_CHUNK = 64000    # textlesslib's CpcFeatureReader default
_CONFIG_INTS = ("hiddenEncoder", "hiddenGar", "nLevelsGRU")
_LSTM_KEY = re.compile(r"^gAR\.baseNet\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")
# CPCEncoder's convolutions: (kernel, stride, padding)
_CONVS = ((10, 5, 3), (8, 4, 2), (4, 2, 1), (4, 2, 1), (4, 2, 1))


def is_cpc(state) -> bool:
    """The layout textlesslib's reader expects: {"weights": state dict, "config": {...}}."""
    return isinstance(state, dict) and "weights" in state and "config" in state and "model" not in state


class CpcGeometry:
    """Frames of CPCEncoder's padded convolutions."""

    hop = HOP

    @staticmethod
    def frames(samples: int) -> int:
        for k, s, p in _CONVS:
            samples = (samples + 2 * p - k) // s + 1 if samples + 2 * p >= k else 0
        return samples

    @property
    def receptive_field(self) -> int:
        """The shortest input that yields a frame (named in the too-short error)."""
        return next(n for n in range(1, 10 * HOP) if self.frames(n) > 0)


class CpcEncoder:
    """The DenseEncoder interface over textlesslib's CpcFeatureReader (fp32, one file per forward)."""

    def __init__(self, model: torch.nn.Module, layer: int, device: torch.device, dtype: str,
                 max_chunk: int = MAX_CHUNK):
        if dtype != "fp32":
            raise UserError(f"--dtype {dtype}: CPC runs in fp32 only (textlesslib's reader has no "
                            "half-precision path, and its LSTM is not verified in one)")
        self.precision = precision.policy(device.type, dtype)
        self.reader = _reader(model.to(device).eval(), max_chunk)
        self.layer, self.device, self.max_chunk = layer, device, max_chunk
        self.geometry = CpcGeometry()
        self.dim = model.gAR.get_output_dim()

    def chunks(self, wav: torch.Tensor) -> list[torch.Tensor]:
        return [wav]  # the reader chunks each file itself

    def encode_units(self, chunks: list[torch.Tensor], quantizer) -> tuple[list[torch.Tensor], list]:
        """encode(), and the units of all its chunks in one assignment."""
        features = self.encode(chunks)
        units = quantizer(torch.cat(features)) if features else []
        bounds = np.cumsum([0] + [len(f) for f in features])
        return features, [units[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @torch.inference_mode()
    def encode(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for c in chunks:
            features = self.reader.get_features(c.to(self.device)).float().cpu()
            if features.shape[0] > self.geometry.frames(c.numel()):
                # upstream's tail slice x[:, -max_chunk:] takes the whole file; with a tail under one frame it
                # appends the whole file's features again: refused, not written wrong
                raise RuntimeError(f"textlesslib's CPC reader repeats the features of a file whose last chunk is "
                                   f"shorter than a frame ({c.numel()} samples = {c.numel() // self.max_chunk} "
                                   f"chunks of {self.max_chunk} + {c.numel() % self.max_chunk}): rerun it with a "
                                   "--max-chunk longer than the file")
            out.append(features)
        return out


def build(state: dict, path: Path, layer: int | None) -> tuple[torch.nn.Module, int]:
    """textlesslib's CPCModel with the first `layer` LSTM layers (default: textlesslib's 2), strictly loaded."""
    try:
        from textless.data.cpc_feature_reader import CPCAR, CPCEncoder, CPCModel
    except ImportError as e:
        raise UserError(f"{path}: a CPC model needs textlesslib's model classes, which this environment lacks "
                        f"({e}): use an image built with textlesslib (TEXTLESSLIB_SRC=...)") from None
    weights, config = _check_layout(state, path)
    saved_layers = config["nLevelsGRU"]
    layer = 2 if layer is None else layer
    if not 1 <= layer <= saved_layers:
        raise UserError(f"--layer {layer}: {path.name} has LSTM layers 1..{saved_layers}")
    model = CPCModel(CPCEncoder(config["hiddenEncoder"]),
                     CPCAR(config["hiddenEncoder"], config["hiddenGar"], False, layer))
    expected = model.state_dict()
    unused = sorted(k for k in weights if _deeper_lstm(k, layer, saved_layers))
    extra = sorted(set(weights) - set(expected) - set(unused))
    missing = sorted(set(expected) - set(weights))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:8])}"] if missing else []) + (
            [f"unexpected {', '.join(extra[:8])}"] if extra else [])
        raise CheckpointError(f"{path}: its weights do not match textlesslib's CPC model "
                              f"(hiddenEncoder {config['hiddenEncoder']}, hiddenGar {config['hiddenGar']}, "
                              f"{saved_layers} LSTM layers): {'; '.join(parts)}")
    wrong = [f"{k} {tuple(weights[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if weights[k].shape != v.shape]
    if wrong:
        raise CheckpointError(f"{path}: weights of the wrong shape: {', '.join(wrong[:4])}")
    model.load_state_dict({k: weights[k] for k in expected}, strict=True)
    if unused:
        log.info("%s: LSTM layers %d..%d are not used for features at layer %d (%d tensors left unloaded, "
                 "as textlesslib does)", path.name, layer + 1, saved_layers, layer, len(unused))
    model.config = {**config, "nLevelsGRU": layer}
    return model.eval(), layer


def _deeper_lstm(key: str, layer: int, saved_layers: int) -> bool:
    found = _LSTM_KEY.match(key)
    return bool(found) and layer <= int(found.group(2)) < saved_layers


def _check_layout(state: dict, path: Path) -> tuple[dict, dict]:
    weights, config = state["weights"], state["config"]
    if not isinstance(weights, dict) or not weights:
        raise CheckpointError(f"{path}: its 'weights' is not a non-empty state dict: not a CPC checkpoint")
    odd = next((k for k, v in weights.items() if not torch.is_tensor(v)), None)
    if odd is not None:
        raise CheckpointError(f"{path}: its weights are not all tensors ({odd!r} is of type "
                              f"{type(weights[odd]).__name__}): not a CPC checkpoint")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: its 'config' is of type {type(config).__name__}, not a dict: "
                              "not a CPC checkpoint")
    bad = [k for k in _CONFIG_INTS if not isinstance(config.get(k), int) or isinstance(config.get(k), bool)
           or config[k] < 1]
    if bad:
        raise CheckpointError(f"{path}: its config lacks a positive integer {', '.join(repr(k) for k in bad)}: "
                              "not a CPC checkpoint textlesslib can read")
    return weights, config


def _reader(model: torch.nn.Module, max_chunk: int):
    """textlesslib's CpcFeatureReader around an already built model (its own __init__ would torch.load)."""
    from textless.data.cpc_feature_reader import CpcFeatureReader

    reader = CpcFeatureReader.__new__(CpcFeatureReader)
    torch.nn.Module.__init__(reader)
    # the attributes CpcFeatureReader.__init__ sets, with its defaults for textlesslib's DENSE_MODELS entry
    reader.model, reader.max_chunk, reader.norm_features, reader.use_encoder_layer = model, max_chunk, False, False
    return reader.eval()
