"""A worker's first epoch starts pulling batches in a thread before its model exists; what it hands over must be
exactly the stream, and a failure of the first batch must surface where the batches are taken."""
import pytest

from jobs._train.worker import _EarlyBatches


def test_the_early_batches_are_the_whole_stream_in_order():
    assert list(_EarlyBatches(({"step": i} for i in range(5)), epoch=0).batches()) == [{"step": i} for i in range(5)]
    assert list(_EarlyBatches(iter(()), epoch=0).batches()) == []


def test_a_first_batch_that_fails_raises_where_the_batches_are_taken():
    def broken():
        raise ValueError("shard-00003.parquet row 7 (sample s-0042): labels outside the class table")
        yield

    early = _EarlyBatches(broken(), epoch=0)
    with pytest.raises(ValueError, match="shard-00003.parquet row 7"):
        early.batches()
