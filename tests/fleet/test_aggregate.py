"""Exact integer aggregation: order independence, equality with an independent rational
reference of the documented rule, the int64 and Python-integer paths, partial sums, Reptile and
top-P% rebuilds."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tintin.fleet.aggregation import (BIAS_LIMIT, EPS_SHIFT, ExactSum, TensorSpec, aggregate, eps_fraction,
                                    reptile_step, round_half_away, scale_value)
from tintin.fleet.codec import add_sparse, top_positions
from tintin.fleet.errors import AggregationError
from tintin.numerics import Scale

from .rational import ref_mean, ref_round, ref_weight_result


scales_st = st.builds(Scale, st.integers(-12, -2), st.integers(0, 2), st.integers(0, 2))
pow2_scales = st.builds(Scale, st.integers(-12, -2), st.just(0), st.just(0))


@st.composite
def clients(draw, mode="compound", bits=8):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    k = draw(st.integers(1, 6))
    limit = 127 if bits == 8 else 32767
    out = []
    for _ in range(k):
        m = np.array(draw(st.lists(st.integers(-limit, limit), min_size=int(np.prod(shape)),
                                   max_size=int(np.prod(shape)))), dtype=np.int8 if bits == 8 else np.int16)
        s = draw(scales_st if mode == "compound" else pow2_scales)
        out.append((m.reshape(shape), s))
    weights = draw(st.lists(st.integers(0, 500), min_size=k, max_size=k))
    if sum(weights) == 0:
        weights[0] = 1
    return shape, out, weights


@given(clients(), st.randoms(use_true_random=False), st.sampled_from(["compound", "pow2"]))
def test_any_client_order_gives_the_same_bits(data, rnd, mode):
    shape, tensors, weights = data
    spec = [TensorSpec("w", "weight", 8, shape)]
    models = [{"w": t} for t in tensors]
    first = aggregate(models, weights, spec, mode)["w"]
    order = list(range(len(models)))
    rnd.shuffle(order)
    again = aggregate([models[i] for i in order], [weights[i] for i in order], spec, mode)["w"]
    assert first[1] == again[1]
    assert first[0].dtype == again[0].dtype == np.int8
    assert np.array_equal(first[0], again[0])


@given(clients())
def test_weights_equal_the_rational_reference_of_the_rule(data):
    shape, tensors, weights = data
    q, s = aggregate([{"w": t} for t in tensors], weights, [TensorSpec("w", "weight", 8, shape)], "compound")["w"]
    ref_q, ref_s = ref_weight_result(ref_mean(tensors, weights), 127, "compound", [t[1] for t in tensors])
    assert s == ref_s
    assert q.ravel().tolist() == ref_q
    assert np.abs(q).max() <= 127


@given(clients(mode="pow2", bits=16))
def test_int16_weights_in_pow2_mode_equal_the_reference(data):
    shape, tensors, weights = data
    q, s = aggregate([{"w": t} for t in tensors], weights, [TensorSpec("w", "weight", 16, shape)], "pow2")["w"]
    ref_q, ref_s = ref_weight_result(ref_mean(tensors, weights), 32767, "pow2", [t[1] for t in tensors])
    assert s == ref_s and s.is_pow2 and q.dtype == np.int16
    assert q.ravel().tolist() == ref_q


@given(st.lists(st.tuples(st.integers(-2**31 + 1, 2**31 - 1), st.integers(-20, -10), st.integers(1, 10**6)),
                min_size=1, max_size=6))
def test_biases_keep_the_finest_scale_and_saturate(items):
    tensors = [(np.array([m], dtype=np.int32), Scale(s)) for m, s, _ in items]
    weights = [w for *_, w in items]
    q, s = aggregate([{"b": t} for t in tensors], weights, [TensorSpec("b", "bias", 32, (1,))], "compound")["b"]
    finest = min((t[1] for t in tensors), key=scale_value)
    want = ref_round(ref_mean(tensors, weights)[0] / scale_value(finest))
    assert s == finest and q.dtype == np.int32
    assert int(q[0]) == max(-BIAS_LIMIT, min(BIAS_LIMIT, want))


def test_large_sums_switch_to_exact_python_integers():
    # exponents far apart and heavy weights: the int64 bound is exceeded, the result stays exact
    tensors = [(np.array([127, -127, 5], np.int8), Scale(40)), (np.array([-3, 126, 1], np.int8), Scale(-40))]
    weights = [10**9, 3]
    acc = ExactSum((3,))
    for (m, s), w in zip(tensors, weights):
        acc.add(m, s, w)
    assert acc.total.dtype == object
    q, s = acc.result("weight", 8, "compound")
    ref_q, ref_s = ref_weight_result(ref_mean(tensors, weights), 127, "compound", [t[1] for t in tensors])
    assert s == ref_s and q.ravel().tolist() == ref_q


@given(clients(), st.integers(1, 5))
def test_partial_sums_merged_equal_one_sum(data, cut):
    shape, tensors, weights = data
    cut = min(cut, len(tensors))
    whole, a, b = ExactSum(shape), ExactSum(shape), ExactSum(shape)
    for i, ((m, s), w) in enumerate(zip(tensors, weights)):
        whole.add(m, s, w)
        (a if i < cut else b).add(m, s, w)
    a.merge(b)
    assert a.result("weight", 8, "compound")[1] == whole.result("weight", 8, "compound")[1]
    assert np.array_equal(a.result("weight", 8, "compound")[0], whole.result("weight", 8, "compound")[0])


@given(clients(), scales_st, st.floats(0.01, 1.0))
def test_reptile_step_equals_the_rational_reference(data, meta_scale, eps):
    shape, tensors, weights = data
    meta = (np.full(shape, 17, dtype=np.int8), meta_scale)
    spec = [TensorSpec("w", "weight", 8, shape)]
    q, s = reptile_step({"w": meta}, [{"w": t} for t in tensors], weights, spec, "compound", eps)["w"]
    k = Fraction(eps_fraction(eps), 1 << EPS_SHIFT)
    avg = ref_mean(tensors, weights)
    m0 = Fraction(17) * scale_value(meta_scale)
    target = [m0 + k * (a - m0) for a in avg]
    ref_q, ref_s = ref_weight_result(target, 127, "compound", [t[1] for t in tensors] + [meta_scale])
    assert s == ref_s and q.ravel().tolist() == ref_q


def test_reptile_with_eps_one_is_fedavg():
    tensors = [(np.array([10, -20], np.int8), Scale(-5)), (np.array([7, 3], np.int8), Scale(-6, 1, 0))]
    spec = [TensorSpec("w", "weight", 8, (2,))]
    meta = {"w": (np.array([100, 100], np.int8), Scale(-3))}
    a = reptile_step(meta, [{"w": t} for t in tensors], [3, 4], spec, "compound", 1.0)["w"]
    b = aggregate([{"w": t} for t in tensors], [3, 4], spec, "compound")["w"]
    assert a[1] == b[1] and np.array_equal(a[0], b[0])


@given(clients(), st.floats(1.0, 100.0))
def test_a_sparse_update_rebuilds_the_device_tensor_exactly(data, top_p):
    shape, tensors, weights = data
    received = tensors[0]
    acc = ExactSum(shape)
    rebuilt = []
    for (m, s), w in zip(tensors[1:] or tensors, weights[1:] or weights):
        idx = top_positions(m, s, *received, top_p)
        add_sparse(acc, *received, idx, m.ravel()[idx], s, w)
        vals = [Fraction(int(v)) * scale_value(received[1]) for v in received[0].ravel()]
        for i in idx:
            vals[i] = Fraction(int(m.ravel()[i])) * scale_value(s)
        rebuilt.append((vals, w))
    W = sum(w for _, w in rebuilt)
    if W == 0:
        return
    mean = [sum(v[i] * w for v, w in rebuilt) / W for i in range(int(np.prod(shape)))]
    q, s = acc.result("weight", 8, "compound")
    scales = [received[1]] + [t[1] for t in (tensors[1:] or tensors)]
    ref_q, ref_s = ref_weight_result(mean, 127, "compound", scales)
    assert s == ref_s and q.ravel().tolist() == ref_q


def test_top_positions_picks_the_largest_moves_lowest_index_first():
    received = np.array([0, 0, 0, 0, 0], np.int8)
    local = np.array([1, -5, 5, 2, -5], np.int8)
    assert top_positions(local, Scale(-7), received, Scale(-7), 40.0).tolist() == [1, 2]
    # the same real change at another scale is compared exactly
    assert top_positions(np.array([1, 2], np.int8), Scale(-6), np.array([2, 0], np.int8), Scale(-7), 50.0).tolist() == [1]


def test_round_half_away_from_zero():
    num = np.array([5, -5, 3, -3, 7, 0], np.int64)
    assert round_half_away(num, 2).tolist() == [3, -3, 2, -2, 4, 0]


def test_bad_input_is_refused_with_one_line():
    acc = ExactSum((2,))
    with pytest.raises(AggregationError, match="shape"):
        acc.add(np.zeros(3, np.int8), Scale(0), 1)
    with pytest.raises(AggregationError, match="integer"):
        acc.add(np.zeros(2, np.float32), Scale(0), 1)
    with pytest.raises(AggregationError, match=">= 0"):
        acc.add(np.zeros(2, np.int8), Scale(0), -1)
    with pytest.raises(AggregationError, match="weight"):
        aggregate([{"w": (np.zeros(2, np.int8), Scale(0))}], [0], [TensorSpec("w", "weight", 8, (2,))], "pow2")
