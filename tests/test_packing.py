"""Token-budget micro batches: within the budget, every sample once, equal counts across ranks."""
from __future__ import annotations

import pytest

from trainer.packing import equalize, pack_micro_batches, padded_tokens


def test_without_a_budget_groups_in_order():
    assert pack_micro_batches([5, 1, 9, 2, 2], max_sequences=2) == [[0, 1], [2, 3], [4]]


def test_budget_packs_by_padded_tokens_longest_first():
    lengths = [100, 10, 90, 12, 11, 500]
    batches = pack_micro_batches(lengths, max_sequences=8, max_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert batches[0] == [5]                       # over the budget alone: its own micro batch
    assert batches[1] == [0, 2]                    # 2 x 100 = 200 tokens, within the budget
    assert batches[2] == [3, 4, 1]                 # 3 x 12 = 36 tokens
    assert all(padded_tokens(lengths, b) <= 200 for b in batches[1:])


def test_budget_respects_the_sequence_cap():
    batches = pack_micro_batches([3] * 7, max_sequences=3, max_tokens=1000)
    assert [len(b) for b in batches] == [3, 3, 1]


def test_equalize_splits_the_widest_until_counts_match():
    lengths = [50, 40, 30, 5, 5, 5]
    batches = [[0, 1, 2], [3, 4, 5]]
    more = equalize(batches, 4, lengths)
    assert len(more) == 4 and sorted(i for b in more for i in b) == list(range(6))
    assert max(padded_tokens(lengths, b) for b in more) <= max(padded_tokens(lengths, b) for b in batches)


@pytest.mark.parametrize("count, match", [(1, "cannot merge"), (7, "cannot fill")])
def test_equalize_rejects_impossible_counts(count, match):
    with pytest.raises(ValueError, match=match):
        equalize([[0, 1], [2]], count, [1, 2, 3])


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_sequences"):
        pack_micro_batches([1], max_sequences=0)
    with pytest.raises(ValueError, match="max_tokens"):
        pack_micro_batches([1], max_sequences=1, max_tokens=0)
