"""State slab: slots, growth, eviction, snapshots; property tests with hypothesis."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from models import CapacityError, StateSlab


def _slab(capacity: int = 4, **kw) -> StateSlab:
    return StateSlab(layers=2, parts=2, hidden=3, aux_init=torch.tensor([0.0, 1.0]), capacity=capacity, **kw)


def _write(slab: StateSlab, ids: list[str], value: float) -> np.ndarray:
    slots = slab.assign(ids)
    idx = torch.from_numpy(slots)
    h, a = slab.gather(idx)
    slab.scatter(idx, torch.full_like(h, value), torch.full_like(a, value))
    return slots


def test_new_streams_get_pristine_slots() -> None:
    slab = _slab()
    _write(slab, ["a", "b"], 5.0)
    slab.evict(["a"])
    slots = slab.assign(["c"])
    h, a = slab.gather(torch.from_numpy(slots))
    assert h.abs().sum() == 0
    assert a.tolist() == [[0.0, 1.0]]
    assert slab.evictions == 1


def test_growth_doubles_until_max_then_errors() -> None:
    slab = _slab(capacity=2, max_capacity=4, eviction="none")
    _write(slab, ["a", "b"], 1.0)
    slab.assign(["c"])
    assert slab.capacity == 4
    h, _ = slab.gather(torch.from_numpy(np.array([slab.slot("a")])))
    assert h.unique().tolist() == [1.0]  # state survives growth
    slab.assign(["d"])
    with pytest.raises(CapacityError, match="SEQSTREAM_MAX_STREAMS"):
        slab.assign(["e"])


def test_lru_evicts_least_recently_used_not_in_batch() -> None:
    slab = _slab(capacity=3, eviction="lru")
    slab.assign(["a"])
    slab.assign(["b"])
    slab.assign(["c"])
    slab.assign(["a"])  # b is now the least recently used
    slab.assign(["d", "c"])
    assert "b" not in slab and {"a", "c", "d"} <= set(slab.stream_ids())
    assert slab.evictions == 1


def test_ttl_evicts_idle_streams_by_event_time() -> None:
    slab = _slab(capacity=2, eviction="ttl", ttl_seconds=10.0)
    s = slab.assign(["a", "b"], np.array([0.0, 5.0]))
    slab.last_ts[s] = [0.0, 5.0]
    assert slab.evict_idle(12.0) == ["a"]
    slab.last_ts[slab.assign(["c"], np.array([12.0]))] = 12.0
    with pytest.raises(CapacityError):
        slab.assign(["d"], np.array([13.0]))  # b is not idle long enough


def test_ttl_eviction_spares_the_streams_of_the_batch_being_assigned() -> None:
    """A full slab, an idle stream in the batch and a new one: the idle one keeps its slot (it was
    already handed out) instead of sharing it with the new stream."""
    slab = _slab(capacity=2, eviction="ttl", ttl_seconds=10.0)
    s = slab.assign(["a", "b"], np.array([0.0, 100.0]))
    slab.last_ts[s] = [0.0, 100.0]
    with pytest.raises(CapacityError):
        slab.assign(["a", "c"], np.array([100.0, 100.0]))  # a is idle but in the batch; b is not idle
    assert slab.slot("a") == s[0] and "c" not in slab
    slots = slab.assign(["c"], np.array([100.0]))  # without a in the batch, a goes
    assert "a" not in slab and slots.tolist() == [s[0]]
    assert len(set(slab.assign(["b", "c"], np.array([101.0, 101.0])).tolist())) == 2


def test_snapshot_is_an_immutable_copy_and_restores() -> None:
    slab = _slab()
    _write(slab, ["a", "b"], 2.0)
    slab.steps[slab.slot("a")] = 7
    snap = slab.snapshot()
    _write(slab, ["a"], 9.0)
    assert snap.hidden.unique().tolist() == [2.0]
    with pytest.raises(ValueError):
        snap.steps[0] = 1
    other = _slab(capacity=1, max_capacity=8)
    other.restore(snap)
    assert set(other.stream_ids()) == {"a", "b"}
    assert other.steps[other.slot("a")] == 7
    h, a = other.gather(torch.tensor([other.slot("b")]))
    assert h.unique().tolist() == [2.0] and a.unique().tolist() == [2.0]


def test_restore_without_replace_merges() -> None:
    slab = _slab()
    _write(slab, ["a"], 1.0)
    src = _slab()
    _write(src, ["b"], 3.0)
    slab.restore(src.snapshot(), replace=False)
    assert set(slab.stream_ids()) == {"a", "b"}


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["write", "evict", "snap"]), st.lists(st.sampled_from("abcdefgh"), max_size=6)),
        max_size=30,
    ),
    capacity=st.integers(1, 4),
)
def test_slab_behaves_like_a_dict_of_states(ops, capacity) -> None:
    """Model-based property: with unbounded growth the slab equals a plain dict of states."""
    slab = _slab(capacity=capacity, max_capacity=64, eviction="none")
    model: dict[str, float] = {}
    counter = 0.0
    for op, ids in ops:
        uniq = list(dict.fromkeys(ids))
        if op == "write" and uniq:
            counter += 1.0
            _write(slab, uniq, counter)
            for s in uniq:
                model[s] = counter
        elif op == "evict":
            slab.evict(uniq)
            for s in uniq:
                model.pop(s, None)
        elif op == "snap":
            snap = slab.snapshot()
            slab.restore(snap)
        assert set(slab.stream_ids()) == set(model)
        assert len(slab) + len(slab._free) == slab.capacity
        for s, v in model.items():
            h, a = slab.gather(torch.tensor([slab.slot(s)]))
            assert h.unique().tolist() == [v] and a.unique().tolist() == [v]
    slots = [slab.slot(s) for s in model]
    assert len(set(slots)) == len(slots)


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.sampled_from([f"s{i}" for i in range(12)]), min_size=1, max_size=40), cap=st.integers(1, 6))
def test_lru_never_evicts_a_stream_of_the_current_batch(ids, cap) -> None:
    slab = _slab(capacity=cap, eviction="lru")
    batch = list(dict.fromkeys(ids))[:cap]
    for s in ids:
        slab.assign([s])
    slots = slab.assign(batch)
    assert all(s in slab for s in batch)
    assert len(set(slots.tolist())) == len(batch)
    assert len(slab) <= cap


def test_evict_without_counting() -> None:
    slab = _slab()
    slab.assign(["a", "b"])
    assert slab.evict(["a"], count=False) == 1 and slab.evictions == 0 and "a" not in slab


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=8), min_size=1, max_size=25),
    evict=st.lists(st.integers(0, 30), max_size=6),
    n=st.integers(1, 40),
    exclude=st.lists(st.integers(0, 63), max_size=5),
    spare=st.booleans(),
)
def test_lru_slots_is_a_stable_sort_by_last_use(batches, evict, n, exclude, spare) -> None:
    """lru_slots (O(slots) numpy) == a stable sort of the resident slots by last use (ties: slot order)."""
    slab = _slab(capacity=64)
    for b in batches:  # many streams share a tick: ties at the cut are the interesting case
        slab.assign([f"s{i}" for i in b])
    slab.evict([f"s{i}" for i in evict])
    ex = np.asarray(exclude, np.int64)
    live = [
        k
        for k in range(slab.capacity)
        if slab._ids[k] is not None and k not in exclude and not (spare and slab.last_used[k] == slab._tick)
    ]
    ref = sorted(live, key=lambda k: (int(slab.last_used[k]), k))[:n]
    assert slab.lru_slots(n, exclude=ex, spare_current=spare).tolist() == ref


def test_lru_slots_example() -> None:
    slab = _slab(capacity=4)
    slab.assign(["a", "b"])
    slab.assign(["c"])
    slab.assign(["a"])
    assert [slab._ids[k] for k in slab.lru_slots(2)] == ["b", "c"]
    assert [slab._ids[k] for k in slab.lru_slots(5, spare_current=True)] == ["b", "c"]
