"""Test support that ships: the demo, `selftest` and the test suites use it.

- tiny: small fairseq HuBERT / wav2vec 2.0 models with random weights, saved as fairseq's Trainer does;
- tiny_vocoders: small Tacotron2/WaveGlow and CodeHiFiGAN sets built from textlesslib's own classes;
- reference: textlesslib's per-file extraction loop, the reference every path is compared with;
- SAMPLES: the bundled sample speech.
"""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
