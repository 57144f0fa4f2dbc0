"""Pure pieces of the features job: inputs, sharding, batch planning, geometry, dedup."""

import numpy as np
import pytest
from textless_stack import inputs, pipeline
from textless_stack.encoder import ConvGeometry
from textless_stack.kmeans import deduplicate

HUBERT = ConvGeometry(((10, 5),) + ((3, 2),) * 4 + ((2, 2),) * 2)


def test_hubert_geometry():
    assert HUBERT.receptive_field == 400 and HUBERT.hop == 320
    assert HUBERT.frames(399) == 0 and HUBERT.frames(400) == 1 and HUBERT.frames(16000) == 49


@pytest.mark.parametrize("n,count", [(0, 3), (1, 3), (10, 3), (20, 4), (7, 7)])
def test_shards_partition_in_order(n, count):
    items = [inputs.Item(path=None, key=str(i)) for i in range(n)]
    parts = [inputs.shard(items, i, count) for i in range(count)]
    assert [it for p in parts for it in p] == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shard_index_out_of_range():
    with pytest.raises(inputs.InputError):
        inputs.shard([], 3, 3)


def test_tsv_errors_point_at_the_line(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("/root\na.wav\t100\nb.wav\n")
    with pytest.raises(inputs.InputError, match=r"x.tsv:3"):
        inputs.collect(str(bad))


def test_jsonl_needs_path(tmp_path):
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"file": "a.wav"}\n')
    with pytest.raises(inputs.InputError, match='"path"'):
        inputs.collect(str(bad))


def test_missing_input():
    with pytest.raises(inputs.InputError, match="no such file"):
        inputs.collect("/definitely/not/here/*.wav")


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
