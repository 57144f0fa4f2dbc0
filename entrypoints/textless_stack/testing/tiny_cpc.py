"""A CPC checkpoint built from textlesslib's own classes, saved in the layout its CpcFeatureReader reads:
{"weights": CPCModel state dict, "config": {...}} (random weights; the real cpc-big-ll6k has
hiddenEncoder = hiddenGar = 512). The saved model has more LSTM layers than textlesslib reads (2)."""

from __future__ import annotations

from pathlib import Path

import torch


def make_cpc(path: Path, hidden_encoder: int = 16, hidden_gar: int = 12, lstm_layers: int = 4, seed: int = 0,
             **config) -> Path:
    from textless.data.cpc_feature_reader import CPCAR, CPCEncoder, CPCModel

    torch.manual_seed(seed)
    model = CPCModel(CPCEncoder(hidden_encoder), CPCAR(hidden_encoder, hidden_gar, False, lstm_layers))
    with torch.no_grad():  # ChannelNorm starts at identity: make its affine part matter
        for name, p in model.named_parameters():
            if "batchNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weights": model.state_dict(),
                "config": {"hiddenEncoder": hidden_encoder, "hiddenGar": hidden_gar, "nLevelsGRU": lstm_layers,
                           "samplingType": "samespeaker", **config}}, path)
    return path
