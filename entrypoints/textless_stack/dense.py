"""Which forward a dense model gets: fairseq's HuBERT / wav2vec 2.0 (encoder.DenseEncoder, batched and
padding-exact) or GSLM's CPC (cpc.CpcEncoder, textlesslib's reader). The file's contents decide, so a
local checkpoint works like a registry name; it is unpickled once, under the allowlist."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from . import cpc, store
from .errors import UserError
from .loader import load_model, unpickle

log = logging.getLogger(__name__)


@dataclass
class Dense:
    encoder: object           # encoder.DenseEncoder | cpc.CpcEncoder: chunks(), encode(), geometry
    sha256: str
    layer: int | None         # 1-based; None: the top
    dim: int | None           # feature dimension, where the checkpoint says


def open_dense(name: str, layer: int | None, device: torch.device, dtype: str, max_chunk: int | None = None,
               user_dir: str | None = None) -> Dense:
    source = store.resolve(name)
    state = unpickle(source.path)
    if cpc.is_cpc(state):
        model, layer = cpc.build(state, source.path, layer)
        encoder = cpc.CpcEncoder(model, layer, device, dtype, max_chunk or cpc.MAX_CHUNK)
        return Dense(encoder, source.sha256, layer, encoder.dim)

    from .encoder import MAX_CHUNK, DenseEncoder

    if layer is None:
        log.info("no --layer given for %s: using the top layer", name)
    loaded = load_model(source, user_dir=user_dir, state=state)
    layers = len(loaded.model.encoder.layers)
    if layer is not None and not 1 <= layer <= layers:
        # fairseq would quietly return the top layer for any other number
        raise UserError(f"--layer {layer}: {name} has transformer layers 1..{layers}")
    encoder = DenseEncoder(loaded.model, layer, bool(loaded.cfg.task.get("normalize", False)), device, dtype,
                           max_chunk or MAX_CHUNK)
    return Dense(encoder, loaded.sha256, layer, loaded.cfg.model.get("encoder_embed_dim"))
