"""Dense features from a HuBERT / wav2vec 2.0 model, many files per forward pass, padding-exact.

Naive zero-padded batching changes HuBERT features: the first convolution's GroupNorm
normalises over time, so padding shifts its statistics, and fairseq's frame padding mask
can leave a frame valid that the unbatched model never produced. Here:
- the conv feature extractor runs layer by layer, GroupNorm statistics over valid samples only;
- the frame mask comes from the conv arithmetic (no conv padding: a valid frame sees only valid samples);
- the transformer gets that mask (fairseq zeroes padded frames before pos_conv and masks attention);
- a BatchNorm in front of the positional conv (conv_pos_batch_norm, mhubert-base-25hz) maps those zeros to
  its shift, which the conv would carry into valid frames: they are zeroed again after it, as the
  unbatched model's conv sees zeros (its own padding) past the end.
The result equals the per-file reference (textlesslib's HubertFeatureReader) to float rounding.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import cpu_bf16, precision

log = logging.getLogger(__name__)

# textlesslib's HubertFeatureReader: 100 s chunks, each encoded on its own
MAX_CHUNK = 100 * 16000

@dataclass(frozen=True)
class ConvGeometry:
    """The conv feature extractor's (kernel, stride) stack: receptive field and frame counts."""

    layers: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, model) -> "ConvGeometry":
        convs = [m[0] for m in model.feature_extractor.conv_layers]
        return cls(tuple((c.kernel_size[0], c.stride[0]) for c in convs))

    def frames(self, samples: int) -> int:
        for k, s in self.layers:
            samples = (samples - k) // s + 1 if samples >= k else 0
        return samples

    @property
    def receptive_field(self) -> int:
        field = 1
        for k, s in reversed(self.layers):
            field = (field - 1) * s + k
        return field

    @property
    def hop(self) -> int:
        hop = 1
        for _, s in self.layers:
            hop *= s
        return hop


def _grouped_convs_in_fp32(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Grouped convolutions (the positional one) back to fp32, fed and read in `dtype` (precision.py says why)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv1d) and module.groups > 1 and not getattr(module, "_fp32_hooks", False):
            module._fp32_hooks = True
            module.float()
            module.register_forward_pre_hook(lambda _m, args: tuple(a.float() for a in args))
            module.register_forward_hook(lambda _m, _args, out: out.to(dtype))


class DenseEncoder:
    """Wraps a loaded fairseq HuBERT / wav2vec 2.0 model for feature extraction."""

    def __init__(self, model, layer: int | None, normalize: bool, device: torch.device, dtype: str = "fp32",
                 max_chunk: int = MAX_CHUNK):
        self.precision = precision.policy(device.type, dtype)
        # our own forward is built from the fp32 weights, before any cast
        self.cpu_forward = self._cpu_forward(model, layer) if self.precision.own_forward else None
        cast = self.precision.torch_dtype if self.precision.cast_weights else None
        self.model = model.to(device=device, dtype=cast).eval()
        if cast is not None and self.precision.fp32_grouped_conv:
            _grouped_convs_in_fp32(self.model, cast)
        self.layer = layer
        self.normalize = normalize
        self.device = device
        self.max_chunk = max_chunk
        self.geometry = ConvGeometry.of(model)

    @staticmethod
    def _cpu_forward(model, layer):
        reason = cpu_bf16.unsupported(model)
        if reason:
            log.info("bf16 on CPU through fairseq's modules: %s", reason)
            return None
        log.info("bf16 on CPU through textless-stack's forward of the same model (cpu_bf16)")
        return cpu_bf16.CpuBf16Forward(model, layer)

    # --- public ---------------------------------------------------------------------------

    def chunks(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """Split one (normalised) waveform into the chunks the reference encodes separately."""
        if self.normalize:
            wav = F.layer_norm(wav, wav.shape)
        pieces = [wav[start:start + self.max_chunk] for start in range(0, wav.numel(), self.max_chunk)]
        # a tail shorter than the receptive field yields no frame (the reference would fail on it)
        return [p for p in pieces if self.geometry.frames(p.numel()) > 0]

    @torch.inference_mode()
    def encode(self, chunks: list[torch.Tensor]) -> list[torch.Tensor]:
        """Features [frames, dim] (float32, on CPU) for each 1-D chunk, in one padded forward pass."""
        x, frames = self._forward(chunks)
        x = x.float().cpu()
        return [x[i, : int(n)] for i, n in enumerate(frames.cpu())]

    @torch.inference_mode()
    def encode_units(self, chunks: list[torch.Tensor], quantizer) -> tuple[list[torch.Tensor], list[np.ndarray]]:
        """encode(), and each chunk's k-means units, assigned on the device for the whole padded batch at once:
        features and units come back together, nothing is synchronised per file."""
        x, frames = self._forward(chunks)
        units = quantizer.assign(x).cpu().numpy()
        x = x.float().cpu()
        frames = frames.cpu()
        return [x[i, : int(n)] for i, n in enumerate(frames)], [units[i, : int(n)] for i, n in enumerate(frames)]

    def _forward(self, chunks: list[torch.Tensor]):
        """The padded batch through the model: (features [B, frames, dim] on the device, valid frames [B])."""
        batch, lengths = pad_batch(chunks, pin=self.device.type == "cuda")
        if self.cpu_forward is not None:
            return self.cpu_forward(batch, lengths)
        batch = batch.to(self.device, dtype=next(self.model.parameters()).dtype, non_blocking=True)
        with self._autocast():
            return self._features(batch, lengths.to(self.device))

    # --- the model, padding-exact ---------------------------------------------------------

    def _autocast(self):
        if not self.precision.autocast:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.precision.torch_dtype)

    def _features(self, source: torch.Tensor, lengths: torch.Tensor):
        m = self.model
        x, frames = self._conv_features(source, lengths)
        x = m.layer_norm(x.transpose(1, 2))
        if m.post_extract_proj is not None:
            x = m.post_extract_proj(x)
        padded = torch.arange(x.shape[1], device=x.device)[None, :] >= frames[:, None]
        layer = None if self.layer is None else self.layer - 1
        with _zero_padded_after_pos_batch_norm(m.encoder, padded):
            x, _ = m.encoder(x, padding_mask=padded if padded.any() else None, layer=layer)
        return x, frames

    def _conv_features(self, source: torch.Tensor, lengths: torch.Tensor):
        x = source.unsqueeze(1)
        valid = lengths
        for block, (k, s) in zip(self.model.feature_extractor.conv_layers, self.geometry.layers):
            valid = torch.div(valid - k, s, rounding_mode="floor") + 1
            for module in block:
                if isinstance(module, nn.GroupNorm):
                    x = _masked_group_norm(module, x, valid)
                else:
                    x = module(x)
        return x, valid


@contextlib.contextmanager
def _zero_padded_after_pos_batch_norm(encoder, padded: torch.Tensor):
    """While the encoder runs: padded frames are zero at the BatchNorm's output, as at its input (fairseq's
    index_put). Only for a positional conv that starts with a BatchNorm, and only when anything is padded."""
    pos_conv = getattr(encoder, "pos_conv", None)
    norm = pos_conv[0] if isinstance(pos_conv, nn.Sequential) and len(pos_conv) else None
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or not padded.any():
        yield
        return
    mask = padded[:, None, :]  # BatchNorm1d output is [batch, channels, frames]
    handle = norm.register_forward_hook(lambda _module, _inputs, out: out.masked_fill(mask, 0))
    try:
        yield
    finally:
        handle.remove()


def pad_batch(chunks: list[torch.Tensor], pin: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D chunks -> a zero-padded float32 batch [B, longest] and the lengths [B]; in pinned memory for
    a non-blocking copy to CUDA when pin is set."""
    lengths = torch.tensor([c.numel() for c in chunks])
    batch = torch.zeros(len(chunks), int(lengths.max()), dtype=torch.float32, pin_memory=pin)
    for i, c in enumerate(chunks):
        batch[i, : c.numel()] = c
    return batch, lengths


def _masked_group_norm(gn: nn.GroupNorm, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """GroupNorm over time that sees only each item's valid frames, as the unbatched model would: statistics
    over the valid prefix of each item, padding left at zero. One vectorised pass for the whole batch
    (no loop over items, nothing synchronised per item), in float32 like autocast's group_norm.
    Unpadded batches take the module's fused kernel."""
    b, c, t = x.shape
    if bool((valid == t).all()):
        return gn(x)
    g = gn.num_groups
    mask = (torch.arange(t, device=x.device)[None, :] < valid[:, None]).to(torch.float32)  # [B, T]
    m4 = mask[:, None, None, :]
    count = (valid.to(torch.float32) * (c // g))[:, None, None, None]
    xg = x.float().reshape(b, g, c // g, t)
    mean = (xg * m4).sum((2, 3), keepdim=True) / count
    centered = (xg - mean).mul_(m4)
    var = centered.square().sum((2, 3), keepdim=True) / count
    y = centered.mul_(torch.rsqrt(var + gn.eps)).reshape(b, c, t)
    if gn.affine:
        y = y.mul_(gn.weight.float()[None, :, None]).add_(gn.bias.float()[None, :, None])
    y = y.mul_(mask[:, None, :])
    return y if torch.is_autocast_enabled(x.device.type) else y.to(x.dtype)
