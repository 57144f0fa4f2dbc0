"""What an export promises, without importing torch: its formats and the parity tolerance.

The commands build their options from these before any model code is imported, so `textless-stack` starts
light, and so does every decoding worker (Python re-runs the console script in each one).
"""

FORMATS = ("hf", "safetensors")
DEFAULT_TOLERANCE = 1e-4        # absolute; fp32 rounding through HuBERT base's 12 layers measures ~2.4e-6
