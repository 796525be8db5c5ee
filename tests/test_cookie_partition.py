"""``specs.cookie_partition``: the pieces a paced switch dump asks for select every cookie exactly
once (an entry in no piece would escape the resync; one in two would be seen twice)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.dataplane import specs


@pytest.mark.parametrize("bits", [0, 1, 3, 5])
@given(cookie=st.integers(min_value=0, max_value=2**64 - 1))
def test_every_cookie_is_in_exactly_one_piece(bits, cookie):
    pieces = specs.cookie_partition(bits)
    assert sum(specs.cookie_selects(cookie, value, mask) for value, mask in pieces) == 1


def test_the_pieces_split_reservations_by_number_and_keep_each_kind_apart():
    pieces = specs.cookie_partition(3)
    assert len(pieces) == 2 + 8 + 1 + 6
    for tenant, rid in [(1, "r1"), (7, "x.3"), (128, "r4096")]:
        cookie = specs.make_cookie(specs.KIND_RESERVATION, tenant, specs.reservation_number(rid), 0x5A)
        [hit] = [p for p in pieces if specs.cookie_selects(cookie, *p)]
        assert hit[0] >> 56 == specs.KIND_RESERVATION
    base = specs.make_cookie(specs.KIND_BASE)
    assert [p for p in pieces if specs.cookie_selects(base, *p)] == [(base, 0xFF << 56)]
    with pytest.raises(ValueError):
        specs.cookie_partition(33)
