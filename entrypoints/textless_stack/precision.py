"""The precision policy, in one place: per device and dtype, which forward runs and how many
seconds of audio share a forward pass.

- fp32 (default) is the reference's arithmetic, everywhere.
- CUDA fp16/bf16: fairseq's modules under autocast.
- CPU bf16: the weights are cast (autocast would re-cast every weight on every pass, which costs as
  much as the matmuls gain) and our own forward of the same function runs (cpu_bf16.py).
- CPU fp16: the weights are cast; fairseq's modules run.
Batching must never slow a device down: one CPU fp32 file per pass already runs at the matmul limit
(padding only adds work), while a short file leaves CPU bf16 matmuls too small, so files share a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

DTYPES = ("fp32", "bf16", "fp16")
CUDA_BATCH_SECONDS = 400.0
CPU_BF16_BATCH_SECONDS = 12.0


@dataclass(frozen=True)
class Precision:
    dtype: str             # fp32 | bf16 | fp16
    cast_weights: bool     # the model's weights themselves are cast to dtype
    autocast: bool         # fairseq's modules run under torch.autocast
    own_forward: bool      # cpu_bf16.CpuBf16Forward replaces fairseq's modules (where it can)
    batch_seconds: float   # padded audio seconds per forward pass (0: one file per pass)
    # oneDNN's bf16 grouped 1-D convolution returns wrong numbers on AVX512-BF16 CPUs (an Intel Xeon here) for
    # 8 or fewer channels per group and even kernels (cosine -0.2..-0.7 to fp32): the positional convolution of
    # small models. Where weights are cast on CPU, grouped convolutions keep fp32 weights and arithmetic.
    fp32_grouped_conv: bool = False

    @property
    def torch_dtype(self):
        import torch

        return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[self.dtype]


def policy(device_type: str, dtype: str) -> Precision:
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {DTYPES}")
    reduced = dtype != "fp32"
    if device_type == "cuda":
        return Precision(dtype, cast_weights=False, autocast=reduced, own_forward=False,
                         batch_seconds=CUDA_BATCH_SECONDS)
    return Precision(dtype, cast_weights=reduced, autocast=False, own_forward=dtype == "bf16",
                     batch_seconds=CPU_BF16_BATCH_SECONDS if dtype == "bf16" else 0.0, fp32_grouped_conv=reduced)


def batch_help() -> str:
    """The --batch-seconds default, said from the policy itself."""
    per = {f"{d} {t}": policy(d, t).batch_seconds for d in ("cuda", "cpu") for t in DTYPES}
    groups: dict[float, list[str]] = {}
    for name, seconds in per.items():
        groups.setdefault(seconds, []).append(name)
    return "; ".join(f"{'/'.join(names)} {seconds:g}" + (" = one file per pass" if not seconds else "")
                     for seconds, names in groups.items())


# What `verify` accepts when it recomputes an output. fp32 on CPU in the environment that wrote it runs the same
# arithmetic on the same files (one file per pass), so the bytes must match. Elsewhere another batch composition,
# library or GPU reorders sums: fp32 drifts by rounding only; bf16 / fp16 features carry 8 / 11 mantissa bits
# through 12+ layers, so single frames can move by tenths and a few units flip between near-equal centroids.
VERIFY_MAX_ABS_DIFF = {"fp32": 1e-4, "fp16": 0.1, "bf16": 0.5}
VERIFY_MIN_UNIT_AGREEMENT = {"fp32": 0.99, "fp16": 0.95, "bf16": 0.95}


def verify_tolerance(dtypes: set[str], device_type: str, same_environment: bool, one_file_per_pass: bool) -> dict:
    """dtypes: the recorded one and verify's (the looser rules). Bytes only where the arithmetic repeats exactly:
    fp32 on CPU, one file per pass (a batch shared with other files rounds differently), the same environment."""
    return {"bytes_identical": dtypes == {"fp32"} and device_type == "cpu" and same_environment and one_file_per_pass,
            "max_abs_diff": max(VERIFY_MAX_ABS_DIFF[d] for d in dtypes),
            "min_unit_agreement": min(VERIFY_MIN_UNIT_AGREEMENT[d] for d in dtypes)}
