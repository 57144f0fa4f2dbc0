"""Pure pieces of the features job whose modules import torch: geometry, batch planning, dedup.

The torch-free pieces (inputs, sharding) are unit tests: tests/unit/test_inputs.py.
"""

import numpy as np
from textless_stack import inputs, pipeline
from textless_stack.encoder import ConvGeometry
from textless_stack.kmeans import deduplicate

HUBERT = ConvGeometry(((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2)


def test_hubert_geometry():
    assert HUBERT.receptive_field == 400 and HUBERT.hop == 320
    assert HUBERT.frames(399) == 0 and HUBERT.frames(400) == 1 and HUBERT.frames(16000) == 49


def plan(lengths, seconds, max_chunk=1_600_000):
    planned = [pipeline._Planned(inputs.Item(None, str(i)), n) for i, n in enumerate(lengths)]
    return [[p.samples for p in b] for b in pipeline._plan(planned, seconds, max_chunk)]


def test_cpu_policy_is_one_file_per_pass():
    assert plan([16000, 32000, 8000], 0) == [[8000], [16000], [32000]]


def test_batches_group_similar_lengths_within_budget():
    batches = plan([16000 * s for s in (1, 9, 2, 10, 3, 11)], 30)
    assert batches == [[16000, 32000, 48000], [144000, 160000], [176000]]
    for b in batches:
        assert len(b) * max(b) <= 30 * 16000 or len(b) == 1


def test_dedup():
    assert deduplicate(np.array([3, 3, 3, 1, 1, 3])) == ([3, 1, 3], [3, 2, 1])
    assert deduplicate(np.array([], dtype=int)) == ([], [])
