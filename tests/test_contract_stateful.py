"""Hypothesis stateful test: random updates of every type, set_many batches and
syncs on a random 1-, 2- or 3-d buffer; after every sync the backend's front
equals the numpy reference model bit for bit (NaN, ±Inf, −0.0 included)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CONTRACT_BACKENDS, backend_param
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import app
from app import Add, Fill, Scale, Set, Write
from app.reference import ReferenceModel, first_difference, same_bits


@pytest.fixture(params=CONTRACT_BACKENDS)
def backend(request) -> str:
    """c, gl and the numpy reference backend (the GL scheduler without GL)."""
    return backend_param(request)

SPECIAL = [0.0, -0.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"),
           1e-45, -1e-40, 3.4028235e38, 1e39, 0.1, 2.0**-126]
values = st.one_of(
    st.sampled_from(SPECIAL),
    st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(-1000, 1000),
)
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple)


def regions(shape):
    def one(n):
        return st.tuples(st.integers(0, n), st.integers(0, n)).map(lambda p: tuple(sorted(p)))

    return st.tuples(*[one(n) for n in shape])


def indices(shape):
    return st.tuples(*[st.integers(0, n - 1) for n in shape])


def make_machine(backend: str):
    class ManagerMachine(RuleBasedStateMachine):
        @initialize(shape=shapes, fill=st.sampled_from([0.0, -0.0, 1.5, float("nan")]),
                    max_pending=st.sampled_from([1, 3, 64, 1 << 16]))
        def open(self, shape, fill, max_pending):
            self.shape = shape
            self.m = app.open_manager(backend, shape, fill=fill, max_pending=max_pending)
            self.ref = ReferenceModel(shape, fill)
            self.last_seq = 0

        def teardown(self):
            if hasattr(self, "m"):
                self.m.close()

        def _queued(self, seqs):
            seqs = [int(s) for s in seqs]
            assert seqs == list(range(self.last_seq + 1, self.last_seq + 1 + len(seqs)))
            if seqs:
                self.last_seq = seqs[-1]

        @rule(data=st.data(), value=values)
        def set_one(self, data, value):
            u = Set(data.draw(indices(self.shape)), value)
            self._queued([self.m.enqueue(u)])
            self.ref.apply(u)

        @rule(data=st.data(), kind=st.sampled_from([Fill, Add, Scale]), value=values)
        def region_update(self, data, kind, value):
            u = kind(data.draw(regions(self.shape)), value)
            self._queued([self.m.enqueue(u)])
            self.ref.apply(u)

        @rule(data=st.data())
        def write(self, data):
            region = data.draw(regions(self.shape))
            rshape = tuple(b - a for a, b in region)
            n = int(np.prod(rshape))
            block = np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
            with np.errstate(over="ignore"):
                u = Write(region, block.reshape(rshape))
            self._queued([self.m.enqueue(u)])
            self.ref.apply(u)

        @rule(data=st.data(), n=st.integers(0, 40))
        def set_many(self, data, n):
            idx = np.array([data.draw(indices(self.shape)) for _ in range(n)],
                           dtype=np.int64).reshape(n, len(self.shape))
            vals = np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype=np.float64)
            with np.errstate(over="ignore"):
                self._queued(self.m.set_many(idx, vals))
            self.ref.set_many(idx, vals)

        @rule(data=st.data())
        def enqueue_many(self, data):
            ups = data.draw(st.lists(
                st.one_of(
                    st.builds(Set, indices(self.shape), values),
                    st.builds(Fill, regions(self.shape), values),
                    st.builds(Add, regions(self.shape), values),
                    st.builds(Scale, regions(self.shape), values),
                ),
                max_size=6,
            ))
            self._queued(self.m.enqueue_many(ups))
            for u in ups:
                self.ref.apply(u)

        @rule()
        def synchronize(self):
            epoch = self.m.synchronize(timeout=10.0)
            assert epoch == self.ref.synchronize()
            front = self.m.front()
            flush = backend == "gl"
            assert same_bits(front, self.ref.front, flush_subnormals=flush), \
                first_difference(front, self.ref.front)

        @precondition(lambda self: hasattr(self, "m"))
        @invariant()
        def front_is_last_synced_state(self):
            # Between syncs the front never changes (§3.3).
            front = self.m.front()
            assert same_bits(front, self.ref.front, flush_subnormals=backend == "gl"), \
                first_difference(front, self.ref.front)

    return ManagerMachine


@pytest.mark.parametrize("examples", [pytest.param(None, id="model")])
def test_manager_matches_reference(backend, examples):
    n = 150 if backend == "c" else 40
    run_state_machine_as_test(
        make_machine(backend),
        settings=settings(max_examples=n, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]),
    )
