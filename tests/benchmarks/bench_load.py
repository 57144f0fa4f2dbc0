"""What loading a tiny checkpoint through our loader costs on top of `import fairseq`.

    .venv/bin/python tests/benchmarks/bench_load.py [--repeat 20]

Prints the one-off import time, then median/min of load_model() against fairseq's own
load_model_ensemble_and_task on the same file, measured side by side in one run.
"""

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, min(times) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    t = time.perf_counter()
    import fairseq  # noqa: F401
    from fairseq import checkpoint_utils

    print(f"import fairseq: {(time.perf_counter() - t) * 1000:.0f} ms (once per process)")
    from textless_stack.testing import tiny
    from textless_stack.loader import load_model

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("hubert", "wav2vec2"):
            path = tiny.make_checkpoint(Path(tmp) / f"{kind}.pt", kind)
            load_model(path)  # warm: first task/model construction imports submodules
            ours = timed(lambda: load_model(path), args.repeat)
            theirs = timed(lambda: checkpoint_utils.load_model_ensemble_and_task([str(path)]), args.repeat)
            print(f"{kind}: load_model median {ours[0]:.1f} ms (min {ours[1]:.1f}); "
                  f"fairseq load_model_ensemble_and_task median {theirs[0]:.1f} ms (min {theirs[1]:.1f}); "
                  f"ratio {ours[0] / theirs[0]:.2f}x")


if __name__ == "__main__":
    main()
