"""Build-time source patcher for fairseq, hydra-core and textlesslib.

Every upstream change this project makes is a named transform in the tables
fairseq.py, hydra.py and textlesslib.py; engine.py applies and verifies them.
"""

from .engine import PatchError, PatchMismatch, Project, Transform, UnknownFlavour, apply
from . import fairseq, hydra, textlesslib

PROJECTS = {p.name: p for p in (fairseq.PROJECT, hydra.PROJECT, textlesslib.PROJECT)}

__all__ = ["PROJECTS", "PatchError", "PatchMismatch", "Project", "Transform", "UnknownFlavour", "apply"]
