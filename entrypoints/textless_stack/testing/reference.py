"""The reference every feature path is compared with: fairseq's own modules, one file at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..encoder import MAX_CHUNK


@torch.inference_mode()
def extract(model, wav: torch.Tensor, layer: int | None = None) -> torch.Tensor:
    """fairseq's `extract_features` of an unpadded batch [B, T] at `layer` (1-based) or the top: [B, frames, C].
    The one place that knows HuBERT's and wav2vec 2.0's signatures differ."""
    from fairseq.models.hubert.hubert import HubertModel

    if isinstance(model, HubertModel):
        x, _ = model.extract_features(source=wav, padding_mask=None, mask=False, output_layer=layer)
        return x
    return model.extract_features(wav, padding_mask=None, mask=False, layer=None if layer is None else layer - 1)["x"]


@torch.inference_mode()
def reference_features(model, wav: torch.Tensor, layer: int | None, normalize: bool,
                       max_chunk: int = MAX_CHUNK) -> torch.Tensor:
    """textlesslib's HubertFeatureReader loop: one file, unbatched, fp32, chunk by chunk."""
    if normalize:
        wav = F.layer_norm(wav, wav.shape)
    wav = wav.view(1, -1)
    out = [extract(model, wav[:, start:start + max_chunk], layer) for start in range(0, wav.size(1), max_chunk)]
    return torch.cat(out, 1).squeeze(0)
