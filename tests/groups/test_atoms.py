"""The channel-space algebra on its own: unions, refinements, alignment, failure modes."""

from __future__ import annotations

import pytest

from trainonce.groups.atoms import AtomTable, NotRepresentable, layout_size


def test_union_joins_and_freezing_spreads() -> None:
    t = AtomTable()
    a, b = t.new(4, "a"), t.new(4, "b")
    t.union(a, b)
    assert t.find(a) is t.find(b)
    t.freeze(a, "because")
    assert t.find(b).frozen == "because"


def test_concat_unified_with_one_space_refines_it_into_a_sum() -> None:
    t = AtomTable()
    whole, left, right = t.new(6, "whole"), t.new(2, "left"), t.new(4, "right")
    t.unify_layouts(((whole,),), ((left,), (right,)))
    normalized = t.normalize(((whole,),))
    assert [term[0].size for term in normalized] == [2, 4]
    assert t.find(normalized[0][0]) is t.find(left)
    assert t.find(normalized[1][0]) is t.find(right)


def test_reshape_into_heads_factors_the_space() -> None:
    t = AtomTable()
    hidden = t.new(12, "hidden")
    heads, head_dim = t.split_layout(((hidden,),), [3, 4])
    assert layout_size(heads) == 3 and layout_size(head_dim) == 4
    merged = t.merge_layouts([heads, head_dim])
    assert [a.size for a in merged[0]] == [3, 4]
    assert t.find(hidden).kind == "prod"


def test_slice_cuts_only_at_whole_rows_of_a_product() -> None:
    t = AtomTable()
    hidden = t.new(12, "hidden")
    t.split_layout(((hidden,),), [3, 4])
    with pytest.raises(NotRepresentable):
        t.slice(((hidden,),), 2, 6)  # through the middle of a head while heads are one digit
    assert layout_size(t.slice(((hidden,),), 4, 8)) == 4  # one whole head


def test_split_of_a_concat_ties_inner_digits() -> None:
    """(A | B) viewed as (2, n): both rows index the same inner positions, so A and B tie."""
    t = AtomTable()
    a, b = t.new(4, "a"), t.new(4, "b")
    outer, inner = t.split_layout(((a,), (b,)), [2, 4])
    assert layout_size(outer) == 2 and layout_size(inner) == 4
    assert t.find(a) is t.find(b)


def test_incompatible_factorisations_are_refused() -> None:
    t = AtomTable()
    x, y = t.new(6, "x"), t.new(6, "y")
    t.split_layout(((x,),), [2, 3])
    t.split_layout(((y,),), [3, 2])
    with pytest.raises(NotRepresentable):
        t.union(x, y)
