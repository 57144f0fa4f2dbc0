"""The bf16-on-CPU forward (cpu_bf16.py) computes fairseq's function: built in fp32 it matches the modules."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from textless_stack.testing import tiny
from textless_stack.cpu_bf16 import CpuBf16Forward, _FftConv, unsupported
from textless_stack.encoder import DenseEncoder, pad_batch
from textless_stack.testing.reference import reference_features

VARIANTS = {
    "hubert": ("hubert", {}),
    "hubert-layer-norm-first": ("hubert", dict(extractor_mode="layer_norm", layer_norm_first=True, conv_bias=True)),
    "wav2vec2": ("wav2vec2", {}),
    "hubert-relu": ("hubert", dict(activation_fn="relu")),
}
# 6 s -> 299 frames: several attention query blocks and several positional FFT blocks
SECONDS = (1.0, 0.4, 6.0, 2.37)


def waves(seed=3):
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(int(s * 16000), generator=g) for s in SECONDS]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("layer", [1, None])
def test_fp32_build_equals_fairseq_batched_and_alone(variant, layer):
    kind, overrides = VARIANTS[variant]
    model, _, _ = tiny.build(kind, seed=1, **overrides)
    assert unsupported(model) is None
    forward = CpuBf16Forward(model, layer, torch.float32)
    wavs = waves()
    x, frames = forward(*pad_batch(wavs))
    for i, w in enumerate(wavs):
        ref = reference_features(model, w, layer, False)
        assert int(frames[i]) == ref.shape[0]
        assert (x[i, : ref.shape[0]] - ref).abs().max() <= 1e-4, (variant, layer, i)
        (alone,), _ = forward(*pad_batch([w]))
        assert (alone - ref).abs().max() <= 1e-4


def test_bf16_batched_stays_with_alone_and_reference():
    model, _, _ = tiny.build("hubert", seed=2)
    forward = CpuBf16Forward(model, 2)
    wavs = waves(seed=4)
    x, frames = forward(*pad_batch(wavs))
    assert x.dtype == torch.bfloat16
    for i, w in enumerate(wavs):
        ref = reference_features(model, w, 2, False)
        (alone,), _ = forward(*pad_batch([w]))
        got = x[i, : int(frames[i])].float()
        assert F.cosine_similarity(got, ref, dim=1).min() > 0.99
        assert F.cosine_similarity(got, alone.float(), dim=1).min() > 0.999  # padding leaks nothing


@pytest.mark.parametrize("kernel,padding,groups,remove,t", [
    (16, 8, 4, 1, 1), (16, 8, 4, 1, 240), (16, 8, 4, 1, 700), (7, 3, 1, 0, 50), (128, 64, 16, 1, 300)])
def test_fft_positional_conv_equals_conv1d(kernel, padding, groups, remove, t):
    conv = torch.nn.Conv1d(48, 48, kernel, padding=padding, groups=groups)
    x = torch.randn(2, t, 48)
    want = conv(x.transpose(1, 2)).transpose(1, 2)
    want = want[:, : want.shape[1] - remove]
    got = _FftConv(conv, remove)(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() <= 1e-4


def test_dense_encoder_uses_it_for_bf16_on_cpu_only():
    model, _, _ = tiny.build("hubert", seed=2)
    assert DenseEncoder(model, 2, False, torch.device("cpu"), "bf16").cpu_forward is not None
    model, _, _ = tiny.build("hubert", seed=2)
    assert DenseEncoder(model, 2, False, torch.device("cpu"), "fp32").cpu_forward is None
    assert DenseEncoder(model, 2, False, torch.device("cpu"), "fp16").cpu_forward is None


def test_other_structures_fall_back_to_the_modules_and_say_why(caplog):
    model, _, _ = tiny.build("hubert", seed=2, activation_fn="gelu_accurate")
    ref_model, _, _ = tiny.build("hubert", seed=2, activation_fn="gelu_accurate")
    assert "gelu_accurate" in unsupported(model)
    with pytest.raises(ValueError, match="gelu_accurate"):
        CpuBf16Forward(model, 2)
    with caplog.at_level(logging.INFO):
        enc = DenseEncoder(model, 2, False, torch.device("cpu"), "bf16")
    assert enc.cpu_forward is None and "gelu_accurate" in caplog.text
    w = waves()[2]
    (got,) = enc.encode(enc.chunks(w))
    assert F.cosine_similarity(got, reference_features(ref_model, w, 2, False), dim=1).min() > 0.99
