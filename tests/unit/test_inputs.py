"""Pure pieces of the features job that need no torch: inputs and sharding."""

import pytest
from textless_stack import inputs


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
