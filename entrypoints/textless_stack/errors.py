"""Errors whose message is the whole story: the CLI prints them as one line."""

from .checkpoint_policy import UnsafeCheckpoint
from .inputs import InputError
from .loader import CheckpointError
from .merge import MergeError
from .store import ModelUnavailable

EXPECTED = (CheckpointError, MergeError, UnsafeCheckpoint, InputError, ModelUnavailable, FileNotFoundError)
