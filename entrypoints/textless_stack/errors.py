"""Errors whose message is the whole story: the CLI prints them as one line."""

from .checkpoint_policy import UnsafeCheckpoint
from .inputs import InputError
from .loader import CheckpointError
from .store import ModelUnavailable

EXPECTED = (CheckpointError, UnsafeCheckpoint, InputError, ModelUnavailable, FileNotFoundError)
