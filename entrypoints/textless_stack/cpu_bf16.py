"""The HuBERT / wav2vec 2.0 forward pass, rewritten for bf16 on CPU; same function, less memory traffic.

Run in bf16 on a CPU, fairseq's modules keep little of what bf16 matmuls gain: the first
GroupNorm round-trips through fp32 copies, every activation writes a fresh buffer (page faults
on tens of MB per pass), convolutions reorder between layouts, and the flash-attention kernel is
slower than plain matmuls at speech lengths. Here:
- activations stay [batch, time, channels], the layout oneDNN's convolutions want (channels-last);
- the first convolution (one input channel) is a matmul over sample windows, and its per-channel
  GroupNorm is folded into it: a linear map's per-channel mean and variance follow exactly from
  the mean and covariance of its input windows (float64), so the norm costs no pass of its own;
- activations and residual sums are computed in place;
- attention is two matmuls per block of 128 queries (memory stays bounded for 100 s chunks);
- the positional convolution (128 taps, 16 groups: 3.8 GFLOP per 8 s, the slowest conv per FLOP)
  runs as an overlap-save FFT correlation in float32, a per-frequency 48x48 matmul per group.
Padded batches stay exact as in encoder.py: statistics over valid frames only, padded frames
zeroed before the positional convolution, padded keys masked.
Built in float32, the same code reproduces fairseq's modules to float rounding (tested); any
model whose structure differs is left to the modules, and `unsupported()` says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.weight_norm import WeightNorm

QUERY_BLOCK = 128
FFT_SIZE = 256  # positional conv blocks: 256-point FFTs, 129 outputs each for 128 taps
ACTIVATIONS = {"gelu": torch._C._nn.gelu_, "relu": torch.relu_}  # in place


def unsupported(model) -> str | None:
    """Why this forward cannot stand in for `model`'s, or None when it can."""
    extractor, encoder = getattr(model, "feature_extractor", None), getattr(model, "encoder", None)
    if extractor is None or type(encoder).__name__ != "TransformerEncoder":
        return f"encoder {type(encoder).__name__} is not wav2vec 2.0's TransformerEncoder"
    # (fairseq >= 0.12 may pad the sequence to a multiple of 2 frames with masked keys: no effect on features)
    pos = encoder.pos_conv
    if isinstance(pos, nn.Sequential) and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in pos):
        return "the positional convolution starts with a BatchNorm (conv_pos_batch_norm, e.g. mhubert-base-25hz)"
    if not (isinstance(pos, nn.Sequential) and len(pos) == 3 and isinstance(pos[0], nn.Conv1d)
            and hasattr(pos[1], "remove") and isinstance(pos[2], nn.GELU)):
        return "the positional convolution is not one conv + SamePad + GELU"
    for i, block in enumerate(extractor.conv_layers):
        conv, rest = block[0], list(block)[1:]
        if not isinstance(conv, nn.Conv1d) or (i == 0) != (conv.in_channels == 1):
            return f"feature extractor layer {i} is not the usual convolution"
        for m in rest:
            if isinstance(m, nn.GroupNorm) and (i > 0 or m.num_groups != m.num_channels or not m.affine):
                return f"feature extractor layer {i} has a GroupNorm this forward does not fold"
            if not isinstance(m, (nn.Dropout, nn.GELU, nn.GroupNorm)) and _layer_norm_of(m) is None:
                return f"feature extractor layer {i} has a {type(m).__name__}"
    for i, layer in enumerate(encoder.layers):
        if type(layer).__name__ != "TransformerSentenceEncoderLayer":
            return f"encoder layer {i} is a {type(layer).__name__}"
        if getattr(layer.activation_fn, "__name__", "") not in ACTIVATIONS:
            return f"encoder layer {i} uses activation {getattr(layer.activation_fn, '__name__', '?')}"
    return None


def _layer_norm_of(m):
    """fairseq's channel LayerNorm in the extractor: Sequential(TransposeLast, LayerNorm, TransposeLast)."""
    if isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[1], nn.LayerNorm):
        return m[1]
    return None


@dataclass
class _Norm:
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float


@dataclass
class _Conv:
    kernel: int
    stride: int
    weight: torch.Tensor  # first layer: [kernel, out] float64 (folded per batch); others: channels-last 4-D
    bias: torch.Tensor | None
    group_norm: _Norm | None
    layer_norm: _Norm | None


@dataclass
class _Layer:
    norm_first: bool
    heads: int
    qkv_weight: torch.Tensor  # q, k, v stacked; q pre-scaled by head_dim ** -0.5 as fairseq scales it
    qkv_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor
    attn_norm: _Norm
    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    fc2_weight: torch.Tensor
    fc2_bias: torch.Tensor
    final_norm: _Norm
    activation: str


class CpuBf16Forward:
    """Features of a padded batch, computed like `model.extract_features` up to `layer` (1-based; None: all)."""

    def __init__(self, model, layer: int | None, dtype: torch.dtype = torch.bfloat16):
        reason = unsupported(model)
        if reason:
            raise ValueError(reason)
        self.dtype = dtype
        cast = lambda t: None if t is None else t.detach().to(dtype)  # noqa: E731
        norm = lambda m: _Norm(cast(m.weight), cast(m.bias), m.eps)  # noqa: E731

        self.convs = []
        for i, block in enumerate(model.feature_extractor.conv_layers):
            conv = block[0]
            gn = next((m for m in block if isinstance(m, nn.GroupNorm)), None)
            ln = next((_layer_norm_of(m) for m in block if _layer_norm_of(m) is not None), None)
            if i == 0:
                weight = conv.weight.detach().double().reshape(conv.out_channels, -1).t().contiguous()
            else:
                weight = cast(conv.weight).unsqueeze(2).contiguous(memory_format=torch.channels_last)
            gn_norm = None if gn is None else _Norm(gn.weight.detach().double(), gn.bias.detach().double(), gn.eps)
            self.convs.append(_Conv(conv.kernel_size[0], conv.stride[0], weight, cast(conv.bias), gn_norm,
                                    None if ln is None else norm(ln)))

        self.feature_norm = norm(model.layer_norm)
        proj = model.post_extract_proj
        self.proj = None if proj is None else (cast(proj.weight), cast(proj.bias))

        enc = model.encoder
        self.positional = _FftConv(enc.pos_conv[0], enc.pos_conv[1].remove)
        self.norm_first = enc.layer_norm_first
        self.encoder_norm = norm(enc.layer_norm)
        count = len(enc.layers) if layer is None else min(layer, len(enc.layers))
        self.final_norm = self.norm_first and layer is None  # fairseq's encoder.forward: only for the top
        self.layers = [self._layer(enc.layers[i], cast, norm) for i in range(count)]

    @staticmethod
    def _layer(layer, cast, norm) -> _Layer:
        attn = layer.self_attn
        q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
        return _Layer(
            norm_first=layer.layer_norm_first, heads=attn.num_heads,
            qkv_weight=cast(torch.cat([q.weight * attn.scaling, k.weight, v.weight])),
            qkv_bias=cast(torch.cat([q.bias * attn.scaling, k.bias, v.bias])),
            out_weight=cast(attn.out_proj.weight), out_bias=cast(attn.out_proj.bias),
            attn_norm=norm(layer.self_attn_layer_norm),
            fc1_weight=cast(layer.fc1.weight), fc1_bias=cast(layer.fc1.bias),
            fc2_weight=cast(layer.fc2.weight), fc2_bias=cast(layer.fc2.bias),
            final_norm=norm(layer.final_layer_norm), activation=layer.activation_fn.__name__)

    # --- forward ----------------------------------------------------------------------------

    @torch.inference_mode()
    def __call__(self, source: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """source [B, samples] float32, zero-padded; returns features [B, frames, dim] and valid frames [B]."""
        x, frames = self._conv_features(source.float(), lengths)
        x = _layer_norm(x, self.feature_norm)
        if self.proj is not None:
            x = F.linear(x, *self.proj)
        padded = torch.arange(x.shape[1])[None, :] >= frames[:, None]
        if not padded.any():
            padded = None
        else:
            x[padded] = 0  # as fairseq zeroes padded frames before the positional convolution
        x.add_(torch._C._nn.gelu_(self.positional(x).to(self.dtype)))
        if not self.norm_first:
            x = _layer_norm(x, self.encoder_norm)
        for layer in self.layers:
            x = self._transformer_layer(layer, x, padded)
        if self.final_norm:
            x = _layer_norm(x, self.encoder_norm)
        return x, frames

    def _conv_features(self, source, lengths):
        first, rest = self.convs[0], self.convs[1:]
        windows = source.unfold(1, first.kernel, first.stride)  # [B, frames, kernel]: the first conv's inputs
        valid = _frames(lengths, first)
        weight, bias = self._fold_first(first, windows, valid)
        x = torch.baddbmm(bias, windows.to(self.dtype), weight)
        x = self._norm_and_activate(first, x)
        for conv in rest:
            b, t, c = x.shape
            y = F.conv2d(x.view(b, 1, t, c).permute(0, 3, 1, 2), conv.weight, conv.bias, stride=(1, conv.stride))
            x = y.permute(0, 2, 3, 1).reshape(b, y.shape[-1], y.shape[1])  # a view: the output is channels-last
            valid = _frames(valid, conv)
            x = self._norm_and_activate(conv, x)
        return x, valid

    def _fold_first(self, conv: _Conv, windows, valid):
        """Per item: the first conv's weight and bias with its GroupNorm folded in (from valid frames only)."""
        w = conv.weight
        if conv.group_norm is None:
            bias = torch.zeros(w.shape[1], dtype=self.dtype) if conv.bias is None else conv.bias
            return w.to(self.dtype).expand(len(valid), -1, -1), bias.expand(len(valid), 1, -1)
        gn = conv.group_norm
        weights, biases = [], []
        for i, n in enumerate(valid.tolist()):
            u = windows[i, :n].double()
            mean = u.mean(0)
            centred = u - mean
            cov = centred.T @ centred / n
            var = ((cov @ w) * w).sum(0)  # per channel: w_c^T cov w_c (the conv bias cancels out)
            scale = gn.weight * torch.rsqrt(var + gn.eps)
            weights.append(w * scale)
            biases.append(gn.bias - (mean @ w) * scale)
        return torch.stack(weights).to(self.dtype), torch.stack(biases)[:, None, :].to(self.dtype)

    def _norm_and_activate(self, conv: _Conv, x):
        if conv.layer_norm is not None:
            x = _layer_norm(x, conv.layer_norm)
        return torch._C._nn.gelu_(x)

    def _transformer_layer(self, p: _Layer, x, padded):
        if p.norm_first:
            x.add_(self._attention(p, _layer_norm(x, p.attn_norm), padded))
            x.add_(self._feed_forward(p, _layer_norm(x, p.final_norm)))
            return x
        x = _layer_norm(x.add_(self._attention(p, x, padded)), p.attn_norm)
        return _layer_norm(x.add_(self._feed_forward(p, x)), p.final_norm)

    def _feed_forward(self, p: _Layer, x):
        return F.linear(ACTIVATIONS[p.activation](F.linear(x, p.fc1_weight, p.fc1_bias)), p.fc2_weight, p.fc2_bias)

    def _attention(self, p: _Layer, x, padded):
        b, t, c = x.shape
        q, k, v = F.linear(x, p.qkv_weight, p.qkv_bias).view(b, t, 3, p.heads, c // p.heads).permute(2, 0, 3, 1, 4)
        keys = k.transpose(-1, -2)
        out = torch.empty(b, t, p.heads, c // p.heads, dtype=x.dtype)
        for start in range(0, t, QUERY_BLOCK):
            scores = q[:, :, start:start + QUERY_BLOCK] @ keys  # [B, heads, block, T]
            if padded is not None:
                scores.masked_fill_(padded[:, None, None, :], float("-inf"))
            out[:, start:start + QUERY_BLOCK] = (torch.softmax(scores, -1) @ v).transpose(1, 2)
        return F.linear(out.view(b, t, c), p.out_weight, p.out_bias)


class _FftConv:
    """A grouped, zero-padded Conv1d over [B, T, C] (float32 out), as FFT correlations of overlapping blocks."""

    def __init__(self, conv: nn.Conv1d, remove: int):
        self.kernel, self.padding, self.groups = conv.kernel_size[0], conv.padding[0], conv.groups
        self.remove = remove
        self.size = max(FFT_SIZE, 1 << (2 * self.kernel - 1).bit_length())
        self.step = self.size - self.kernel + 1  # outputs per block that see no wrapped-around input
        w = _conv_weight(conv).detach().float()  # [out, in per group, taps]
        out, per_group, _ = w.shape
        spectrum = torch.fft.rfft(w, n=self.size).conj()  # correlation = product with the conjugate
        # [freq, group, in, out]: one small matmul per frequency and group
        self.spectrum = spectrum.view(self.groups, out // self.groups, per_group, -1).permute(3, 0, 2, 1).contiguous()
        self.bias = None if conv.bias is None else conv.bias.detach().float()

    def __call__(self, x):
        b, t, c = x.shape
        out_len = t + 2 * self.padding - self.kernel + 1 - self.remove
        blocks = -(-out_len // self.step)
        padded = x.new_zeros(b, blocks * self.step + self.kernel - 1, c, dtype=torch.float32)
        padded[:, self.padding:self.padding + t] = x
        windows = padded.unfold(1, self.size, self.step)  # [B, blocks, C, size]
        spec = torch.fft.rfft(windows, dim=-1)  # [B, blocks, C, freq]
        freq, groups = spec.shape[-1], self.groups
        spec = spec.view(b * blocks, groups, c // groups, freq).permute(3, 1, 0, 2)  # [freq, group, B*blocks, in]
        y = torch.matmul(spec, self.spectrum)  # [freq, group, B*blocks, out]
        y = y.permute(2, 1, 3, 0).reshape(b, blocks, c, freq)
        y = torch.fft.irfft(y, n=self.size, dim=-1)[..., : self.step]  # [B, blocks, C, step]
        y = y.transpose(2, 3).reshape(b, blocks * self.step, c)[:, :out_len]
        return y if self.bias is None else y + self.bias


def _frames(samples: torch.Tensor, conv: _Conv) -> torch.Tensor:
    """Output frames of an unpadded strided conv, per item."""
    return torch.div(samples - conv.kernel, conv.stride, rounding_mode="floor") + 1


def _layer_norm(x, n: _Norm):
    return F.layer_norm(x, x.shape[-1:], n.weight, n.bias, n.eps)


def _conv_weight(conv: nn.Conv1d) -> torch.Tensor:
    """The positional conv's effective weight; old-style weight_norm only refreshes `.weight` in a forward hook."""
    for hook in conv._forward_pre_hooks.values():
        if isinstance(hook, WeightNorm):
            return hook.compute_weight(conv)
    return conv.weight
