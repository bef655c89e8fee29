"""Update types, their validation, and the reference model itself (the oracle
the backends are compared against must be right too)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app import Add, Fill, Scale, Set, Write
from app.reference import ReferenceModel, first_difference, same_bits
from app.updates import validate, validate_region, validate_set_many, validate_shape


def test_validate_normalizes_and_copies():
    data = np.arange(4.0).reshape(2, 2)
    u = validate(Write([[0, 2], [1, 3]], data), (4, 4))
    assert u.region == ((0, 2), (1, 3))
    assert u.data.dtype == np.float32 and u.data.flags.c_contiguous
    data[0, 0] = 99
    assert u.data[0, 0] == 0.0
    s = validate(Set([np.int64(1), 2], np.float32(0.5)), (4, 4))
    assert s.index == (1, 2) and type(s.value) is float


def test_empty_region_is_valid_and_a_no_op():
    ref = ReferenceModel((3, 3), 1.0)
    ref.apply(Fill(((2, 2), (0, 3)), 5.0))
    ref.apply(Write(((0, 0), (0, 3)), np.zeros((0, 3))))
    assert np.all(ref.back == 1.0)
    assert validate_region(((0, 0), (3, 3)), (3, 3)) == ((0, 0), (3, 3))


@pytest.mark.parametrize("shape", [(0,), (1, 2, 3, 4), (), (2, True)])
def test_bad_shapes(shape):
    with pytest.raises(ValueError):
        validate_shape(shape)


def test_reference_float32_arithmetic_edge_cases():
    ref = ReferenceModel((6,))
    ref.apply(Write(((0, 6),), [1.0, -0.0, math.inf, -math.inf, math.nan, 3e38]))
    ref.apply(Scale(((0, 2),), 0.0))          # 1*0 = 0, -0*0 = -0
    ref.apply(Add(((2, 3),), -math.inf))      # inf + -inf = nan
    ref.apply(Scale(((3, 4),), 0.0))          # -inf * 0 = nan
    ref.apply(Scale(((5, 6),), 10.0))         # overflows to inf in float32
    b = ref.back
    assert b[0] == 0.0 and math.copysign(1, b[0]) == 1
    assert b[1] == 0.0 and math.copysign(1, b[1]) == -1
    assert math.isnan(b[2]) and math.isnan(b[3]) and math.isnan(b[4])
    assert b[5] == math.inf
    assert b.dtype == np.float32


def test_reference_add_is_float32_not_float64():
    ref = ReferenceModel((1,), fill=16777216.0)  # 2**24: +1 is lost in float32
    ref.apply(Add(((0, 1),), 1.0))
    assert ref.back[0] == np.float32(16777216.0)


def test_reference_set_many_last_write_wins_in_array_order():
    ref = ReferenceModel((2, 2))
    ref.set_many(np.array([[0, 0], [1, 1], [0, 0], [0, 0]]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert ref.back.tolist() == [[4.0, 0.0], [0.0, 2.0]]


def test_reference_front_only_changes_at_sync():
    ref = ReferenceModel((2,))
    ref.apply(Fill(((0, 2),), 1.0))
    assert ref.front.tolist() == [0.0, 0.0]
    assert ref.synchronize() == 1 and ref.front.tolist() == [1.0, 1.0]


def test_same_bits():
    a = np.array([0.0, np.nan, 1.0], np.float32)
    assert same_bits(a, a.copy())
    assert not same_bits(a, np.array([-0.0, np.nan, 1.0], np.float32)), "-0.0 must differ from 0.0"
    assert same_bits(a, np.array([0.0, -np.nan, 1.0], np.float32)), "any NaN equals any NaN"
    sub = np.array([1e-40], np.float32)
    assert not same_bits(sub, np.zeros(1, np.float32))
    assert same_bits(sub, np.zeros(1, np.float32), flush_subnormals=True)
    assert "first at (2,)" in first_difference(a, np.array([0.0, np.nan, 2.0], np.float32))


def test_validate_set_many_shapes():
    idx, vals = validate_set_many([1, 2], [0.5, 1.5], (4,))
    assert idx.shape == (2, 1) and vals.dtype == np.float32
    with pytest.raises(ValueError, match="out of bounds"):
        validate_set_many([[0, 5]], [1.0], (4, 4))
    idx, _ = validate_set_many(np.empty((0, 2), np.int64), np.empty(0), (4, 4))
    assert idx.shape == (0, 2)


def test_updates_compare_by_value():
    assert Set((1, 2), 3.0) == Set((1, 2), 3.0)
    assert Fill(((0, 1),), math.nan) == Fill(((0, 1),), math.nan)
    assert Write(((0, 2),), np.array([1.0, 2.0])) == Write(((0, 2),), np.array([1.0, 2.0]))
    assert Add(((0, 1),), 1.0) != Scale(((0, 1),), 1.0)
    assert repr(Set((1, 2), 3.0)) == "Set((1, 2), 3.0)"
