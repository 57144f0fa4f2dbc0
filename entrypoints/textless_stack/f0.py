"""Per-unit F0, as textlesslib's SpeechEncoder computes it (need_f0=True, no normaliser, no quantiser).

textlesslib (ba33d669, textless/data/f0_preprocess.py) does two things, reproduced here over the same
pinned libraries so that `features --f0` works in images without textlesslib:
- `track`: YAAPT (amfm-decompy) over the peak-normalised 16 kHz waveform, padded by 10 ms each side,
  one value per 5 ms, 0 where unvoiced (get_f0);
- `per_unit`: the track cut to the units' span (padded with its last value, or truncated, by at most
  5 units' worth), then the mean of the voiced values under each unit, 0 where none
  (align_f0_to_durations).
tests/fixtures/f0/ holds textlesslib's own output for the same audio (generate.py names the commit).
"""

from __future__ import annotations

import numpy as np

FRAME_SPACE = 0.005   # seconds per F0 value (textlesslib's F0_FRAME_SPACE)
_FRAME_LENGTH = 20.0  # ms


class F0Error(Exception):
    """This file's F0 cannot be computed or aligned; the run goes on with the others."""


def track(wav: np.ndarray, rate: int = 16000) -> "torch.Tensor":
    import torch

    return torch.from_numpy(track_array(wav, rate)).float()


def track_array(wav: np.ndarray, rate: int = 16000) -> np.ndarray:
    """`track` with numpy alone (decoding workers import no torch)."""
    import amfm_decompy.basic_tools as basic
    import amfm_decompy.pYAAPT as pYAAPT
    from librosa.util import normalize

    pad = int(_FRAME_LENGTH / 1000 * rate) // 2
    audio = np.pad(normalize(wav) * 0.95, (pad, pad), "constant", constant_values=0)
    try:
        pitch = pYAAPT.yaapt(basic.SignalObj(audio, rate), frame_length=_FRAME_LENGTH,
                             frame_space=FRAME_SPACE * 1000, nccf_thresh1=0.25, tda_frame_length=25.0)
    except Exception as e:  # YAAPT fails on some inputs (e.g. shorter than its analysis windows)
        raise F0Error(f"F0 (YAAPT) failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    return np.asarray(pitch.samp_values, dtype=np.float32)


def per_unit(f0: "torch.Tensor", durations: list[int], hop: int, rate: int = 16000) -> list[float]:
    """The mean voiced F0 under each unit; `hop`: samples per unit frame at `rate`."""
    import torch

    ratio = hop / rate / FRAME_SPACE  # F0 values per frame: 4 for 50 Hz units, 8 for 25 Hz
    tolerance = 5 * ratio
    target = int(ratio * sum(durations))
    diff = f0.numel() - target
    if abs(diff) > tolerance:
        raise F0Error(f"F0 track of {f0.numel()} values does not cover {sum(durations)} frames "
                      f"({ratio:g} values each, tolerance {tolerance:g})")
    if diff > 0:
        f0 = f0[:target]
    elif diff < 0:
        f0 = torch.cat((f0, f0.new_full((-diff,), f0[-1])), 0)
    means, offset = [], 0.0
    for duration in durations:
        span = f0[int(offset):int(offset + duration * ratio)]
        voiced = span[span != 0]
        means.append(voiced.mean().item() if voiced.numel() else 0.0)
        offset += duration * ratio
    return means
