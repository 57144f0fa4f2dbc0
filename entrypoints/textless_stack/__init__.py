"""textless-stack: what runs inside the images.

Kept import-light on purpose: patched fairseq imports textless_stack.checkpoint_policy,
so nothing here may import fairseq at module level.
"""

__version__ = "0.1.0"
