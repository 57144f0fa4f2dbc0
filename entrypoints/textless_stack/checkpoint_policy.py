"""What may be unpickled from a checkpoint file.

Patched fairseq and textlesslib route every `torch.load` of a file through
`torch_load` (see env/patcher/), so one policy governs all of them:

- by default `weights_only=True` with a minimal allowlist of what real fairseq
  checkpoints contain (argparse.Namespace, fairseq's Dictionary, numpy arrays,
  scalars and dtypes); any other global is refused, naming it;
- full unpickling only when the user vouches for the file, by setting
  TEXTLESS_STACK_TRUST_CHECKPOINTS=1 (the CLI's --trust-checkpoint sets it),
  and it is logged, naming which of the two the user gave;
- a refusal advises trust only where full unpickling could read the file: a torch.save
  file whose globals this environment has (never a plain pickle, which torch cannot load).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import re

import torch

from .errors import UserError

log = logging.getLogger(__name__)

TRUST_ENV = "TEXTLESS_STACK_TRUST_CHECKPOINTS"
TRUST_FLAG = "--trust-checkpoint"
# set next to TRUST_ENV by trust_from_cli, so that the log names what the user gave (child processes inherit both)
TRUSTED_BY_ENV = "TEXTLESS_STACK_TRUSTED_BY"


class UnsafeCheckpoint(UserError):
    """The safe unpickler refused the file; the message says whether trusting it could help."""


def trusted() -> bool:
    return os.environ.get(TRUST_ENV, "") == "1"


def trust_from_cli() -> None:
    """--trust-checkpoint: trust files in this process and those it starts."""
    os.environ[TRUST_ENV] = "1"
    os.environ[TRUSTED_BY_ENV] = TRUST_FLAG


def _trusted_by() -> str:
    return TRUST_FLAG if os.environ.get(TRUSTED_BY_ENV) == TRUST_FLAG else f"{TRUST_ENV}=1"


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
        log.warning("full unpickling of %s: trusted by %s", name, _trusted_by())
        return torch.load(f, map_location=map_location, weights_only=False, **kwargs)
    with torch.serialization.safe_globals(allowed_globals()):
        try:
            return torch.load(f, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpoint(f"{name}: {_refusal(str(e), f)}") from None


def _refusal(message: str, f) -> str:
    if not _torch_serialized(f):  # torch.load cannot read it, trusted or not
        return (f"not a PyTorch checkpoint (not in a torch.save format: a plain pickle?): refusing to unpickle it, "
                f"and {TRUST_FLAG} would not help")
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        refused = f"refused to unpickle global {found.group(1)}: it is not on the checkpoint allowlist"
        missing = _unresolvable(found.group(1))
        if missing:
            return f"{refused}, and {TRUST_FLAG} would not help: {missing}"
        return f"{refused}. If you trust this file, rerun with {TRUST_FLAG} (or {TRUST_ENV}=1)."
    reason = re.search(r"WeightsUnpickler error: ([^\n]+)", message)
    return ("not a checkpoint the safe unpickler can read"
            + (f" ({reason.group(1).strip()})" if reason else "")
            + f"; if you trust this file, rerun with {TRUST_FLAG} (or {TRUST_ENV}=1).")


_TORCH_HEADS = (b"PK\x03\x04",) + tuple(  # a zip archive, or the legacy stream: torch's magic number first
    pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1))


def _torch_serialized(f) -> bool:
    """Whether `f` (path or binary file) starts like a torch.save file; read, never unpickled."""
    try:
        if isinstance(f, (str, os.PathLike)):
            with open(f, "rb") as fh:
                head = fh.read(64)
        else:
            f.seek(0)
            head = f.read(64)
    except (OSError, ValueError, AttributeError):
        return True  # cannot tell: keep the advice
    return head.startswith(_TORCH_HEADS)


def _unresolvable(qualname: str) -> str | None:
    """Why full unpickling could not resolve `qualname` here either (None: it might); imports nothing."""
    top = qualname.split(".")[0]
    if top == "__main__":
        return f"{qualname} belonged to the script that wrote the file"
    try:
        found = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        found = True
    return None if found else f"module {top!r} is not installed here"
