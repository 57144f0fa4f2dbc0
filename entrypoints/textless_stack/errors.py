"""Errors whose message is the whole story: the CLI prints them as one line."""

from .checkpoint_policy import UnsafeCheckpoint
from .loader import CheckpointError

EXPECTED = (CheckpointError, UnsafeCheckpoint, FileNotFoundError)
