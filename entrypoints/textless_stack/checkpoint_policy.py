"""What may be unpickled from a checkpoint file.

Patched fairseq and textlesslib route every `torch.load` of a file through
`torch_load` (see env/patcher/), so one policy governs all of them:

- by default `weights_only=True` with a minimal allowlist of what real fairseq
  checkpoints contain (argparse.Namespace, fairseq's Dictionary, numpy arrays,
  scalars and dtypes); any other global is refused, naming it;
- full unpickling only when the user vouches for the file, by setting
  TEXTLESS_STACK_TRUST_CHECKPOINTS=1 (the CLI's --trust-checkpoint sets it),
  and it is logged.
"""

from __future__ import annotations

import logging
import os
import pickle
import re

import torch

log = logging.getLogger(__name__)

TRUST_ENV = "TEXTLESS_STACK_TRUST_CHECKPOINTS"


class UnsafeCheckpoint(Exception):
    """The file needs a global outside the allowlist."""


def trusted() -> bool:
    return os.environ.get(TRUST_ENV, "") == "1"


def allowed_globals() -> list:
    import argparse

    import numpy as np
    from numpy.core.multiarray import _reconstruct, scalar

    allowed = [argparse.Namespace, _reconstruct, scalar, np.ndarray, np.dtype]
    # numpy pickles a dtype by its class in numpy >= 1.25 (numpy.dtypes.Float64DType, ...)
    allowed += [type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"]
    try:
        from fairseq.data.dictionary import Dictionary
    except ImportError:  # fairseq absent: its dictionaries cannot be in a file we can use anyway
        pass
    else:
        allowed.append(Dictionary)
    return allowed


def torch_load(f, map_location=None, **kwargs):
    """torch.load under the policy. `f` is a path or an open binary file."""
    kwargs.pop("weights_only", None)  # the policy decides, not the caller
    name = getattr(f, "name", f)
    if trusted():
        log.warning("full unpickling of %s: trusted by %s=1", name, TRUST_ENV)
        return torch.load(f, map_location=map_location, weights_only=False, **kwargs)
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpoint(f"{name}: {_refusal(str(e))}") from None


def _refusal(message: str) -> str:
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return (f"refused to unpickle global {found.group(1)}: it is not on the checkpoint allowlist. "
                f"If you trust this file, rerun with --trust-checkpoint (or {TRUST_ENV}=1).")
    reason = re.search(r"WeightsUnpickler error: ([^\n]+)", message)
    return ("not a checkpoint the safe unpickler can read"
            + (f" ({reason.group(1).strip()})" if reason else "")
            + f"; if you trust this file, rerun with --trust-checkpoint (or {TRUST_ENV}=1).")
