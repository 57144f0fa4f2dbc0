"""The vectorised masked GroupNorm (encoder.py) equals the module run on each item's valid frames alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from textless_stack.encoder import _masked_group_norm


def per_item(gn: nn.GroupNorm, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The reference: what the unbatched model computes, item by item, padding left at zero."""
    out = torch.zeros_like(x)
    for i, n in enumerate(valid.tolist()):
        out[i:i + 1, :, :n] = gn(x[i:i + 1, :, :n])
    return out


@pytest.mark.parametrize("channels,groups", [(512, 512), (64, 16), (8, 1)])
def test_equals_the_per_item_module(channels, groups):
    torch.manual_seed(channels + groups)
    gn = nn.GroupNorm(groups, channels, affine=True)
    with torch.no_grad():
        gn.weight.normal_()
        gn.bias.normal_()
    x = torch.randn(4, channels, 3000) * 3 + 1
    valid = torch.tensor([3000, 2999, 1700, 40])
    got, ref = _masked_group_norm(gn, x, valid), per_item(gn, x, valid)
    assert got.dtype == x.dtype and got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-5
    assert got[3, :, 40:].abs().max().item() == 0.0  # padding stays zero


def test_an_unpadded_batch_takes_the_module_itself():
    gn = nn.GroupNorm(4, 8)
    x = torch.randn(2, 8, 100)
    assert torch.equal(_masked_group_norm(gn, x, torch.tensor([100, 100])), gn(x))
