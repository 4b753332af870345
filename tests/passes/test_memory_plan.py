"""Static memory planning: offsets in one workspace for the intermediate values of a call sequence."""
import json

import pytest
from hypothesis import given, strategies as st

from kiln.ir import dims
from kiln.passes.memory_plan import BufferUse, MemoryPlan, plan_memory


def _check(buffers, plan: MemoryPlan, env=None):
    """No two buffers live at one step share a byte; offsets aligned; all inside the peak."""
    env = env or {}
    offsets = plan.offsets_for(env)
    peak = plan.peak(env)
    sizes = {b.value: dims.evaluate(b.nbytes, env) for b in buffers}
    for b in buffers:
        o, n = offsets[b.value], sizes[b.value]
        assert o % plan.alignment == 0, (b, o)
        assert 0 <= o and o + n <= peak, (b, o, n, peak)
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.overlaps(b) and sizes[a.value] and sizes[b.value]:
                oa, ob = offsets[a.value], offsets[b.value]
                assert oa + sizes[a.value] <= ob or ob + sizes[b.value] <= oa, (a, b, oa, ob)


def _lower_bound(buffers) -> int:
    """The most bytes live at one step: no plan can do better."""
    steps = {s for b in buffers for s in (b.first, b.last)}
    return max((sum(b.nbytes for b in buffers if b.first <= s <= b.last) for s in steps), default=0)


def _no_reuse(buffers, alignment) -> int:
    return sum(-(-b.nbytes // alignment) * alignment for b in buffers)


# --- static sizes ----------------------------------------------------------------------------------

def test_values_live_at_different_steps_share_memory():
    bufs = [BufferUse("t0", 1000, 0, 1), BufferUse("t1", 2000, 1, 2), BufferUse("t2", 1000, 2, 3)]
    plan = plan_memory(bufs)
    # the largest first, at 0; t0 and t2 are never live together: one place, after t1
    assert plan.offsets == {"t0": 2048, "t1": 0, "t2": 2048}
    assert plan.size == 3048 == plan.peak({})
    _check(bufs, plan)


def test_a_step_reading_one_and_writing_the_other_is_an_overlap():
    bufs = [BufferUse("a", 64, 0, 1), BufferUse("b", 64, 1, 2)]
    assert plan_memory(bufs).offsets == {"a": 0, "b": 64}
    bufs = [BufferUse("a", 64, 0, 1), BufferUse("b", 64, 2, 3)]
    assert plan_memory(bufs).offsets == {"a": 0, "b": 0}


def test_a_buffer_takes_the_lowest_free_place():
    # b dies at step 1, so c (live with a only) goes below a, where b was
    bufs = [BufferUse("a", 1000, 0, 4), BufferUse("b", 2048, 0, 1), BufferUse("c", 900, 3, 4)]
    plan = plan_memory(bufs)
    assert plan.offsets == {"a": 2048, "b": 0, "c": 0}
    assert plan.size == 3048
    # d is live with x (at 0) and y (at 1024): the only gap is alignment padding, so d goes last
    bufs = [BufferUse("x", 1000, 0, 9), BufferUse("y", 1000, 0, 9), BufferUse("d", 64, 2, 3)]
    assert plan_memory(bufs).offsets == {"x": 0, "y": 1024, "d": 2048}
    bufs = [BufferUse("big", 4096, 0, 1), BufferUse("a", 1000, 2, 5), BufferUse("b", 1000, 4, 6),
            BufferUse("c", 2000, 6, 7)]
    plan = plan_memory(bufs)
    assert plan.offsets == {"big": 0, "c": 0, "a": 0, "b": 2048}
    assert plan.size == 4096
    _check(bufs, plan)


@pytest.mark.parametrize("alignment", [1, 16, 64, 256])
def test_offsets_are_aligned(alignment):
    bufs = [BufferUse(f"t{i}", 100 + 7 * i, i, i + 2) for i in range(8)]
    plan = plan_memory(bufs, alignment=alignment)
    assert plan.alignment == alignment
    _check(bufs, plan)
    assert all(o % alignment == 0 for o in plan.offsets.values())


def test_peak_between_the_lower_bound_and_no_reuse():
    # a small residual network: each block's input is read again by the block's add
    bufs, step = [], 0
    size = 3211264
    for k in range(4):
        bufs += [BufferUse(f"b{k}_conv1", size, step, step + 1), BufferUse(f"b{k}_conv2", size, step + 1, step + 2),
                 BufferUse(f"b{k}_out", size, step + 2, step + 3 if k < 3 else step + 2)]
        step += 3
    plan = plan_memory(bufs)
    _check(bufs, plan)
    assert _lower_bound(bufs) <= plan.size <= _no_reuse(bufs, 64)
    assert plan.size == _lower_bound(bufs)  # equal sizes: greedy is optimal here
    assert plan.size < _no_reuse(bufs, 64) // 3


def test_zero_sized_and_empty():
    assert plan_memory([]).size == 0
    assert plan_memory([]).to_json() == {"buffers": [], "peak_bytes": 0}
    plan = plan_memory([BufferUse("e", 0, 0, 3), BufferUse("a", 100, 0, 3)])
    assert plan.offsets == {"e": 0, "a": 0}
    assert plan.size == 100


def test_to_json_keeps_ints_and_writes_polynomials_as_strings():
    bufs = [BufferUse("a", 100, 0, 0), BufferUse("b", "12*batch", 0, 1)]
    doc = plan_memory(bufs).to_json()
    assert json.loads(json.dumps(doc)) == doc
    assert [d["value"] for d in doc["buffers"]] == ["a", "b"]  # in the order given
    by_name = {d["value"]: d for d in doc["buffers"]}
    assert by_name["a"]["bytes"] == 100 and by_name["b"]["bytes"] == "12*batch"
    assert isinstance(doc["peak_bytes"], str)
    assert plan_memory([BufferUse("a", 100, 0, 0)]).to_json() == {
        "buffers": [{"value": "a", "offset": 0, "bytes": 100}], "peak_bytes": 100}


# --- symbolic sizes --------------------------------------------------------------------------------

def test_symbolic_sizes_share_slots():
    bufs = [BufferUse("t0", "3211264*batch", 0, 1), BufferUse("t1", "3211264*batch", 1, 2),
            BufferUse("t2", "3211264*batch", 2, 3)]
    plan = plan_memory(bufs)
    assert plan.offsets == {"t0": 0, "t1": "3211264*batch", "t2": 0}
    assert plan.size == "6422528*batch"
    assert plan.peak({"batch": 3}) == 6 * 3211264
    for b in (1, 2, 7, 100):
        _check(bufs, plan, {"batch": b})


def test_a_slot_is_an_aligned_coefficient_wise_upper_bound():
    bufs = [BufferUse("a", "4*n-4", 0, 1), BufferUse("b", "2*n+100", 2, 3), BufferUse("c", 10, 0, 3)]
    plan = plan_memory(bufs)
    # a and b share a slot of 64*n + 128 (4 -> 64 and 100 -> 128; the -4 dropped); c follows
    assert plan.offsets == {"a": 0, "b": 0, "c": "64*n+128"}
    assert plan.size == "64*n+192"
    for n in (1, 2, 50, 10**6):
        _check(bufs, plan, {"n": n})


def test_mixed_static_and_symbolic():
    bufs = [BufferUse("x", 1 << 20, 0, 2), BufferUse("y", "4096*seq", 1, 3), BufferUse("z", 1 << 20, 3, 4),
            BufferUse("w", "1024*batch*seq", 4, 5)]
    plan = plan_memory(bufs)
    for env in ({"batch": 1, "seq": 1}, {"batch": 8, "seq": 512}, {"batch": 3, "seq": 1000}):
        _check(bufs, plan, env)
    assert plan.peak({"batch": 1, "seq": 1}) < _no_reuse([BufferUse("x", 1 << 20, 0, 0)] * 2, 64) + 4096 * 2


def test_peak_needs_every_symbol():
    plan = plan_memory([BufferUse("a", "4*batch*seq", 0, 0)])
    with pytest.raises(ValueError, match="seq"):
        plan.peak({"batch": 2})
    assert plan.peak({"batch": 2, "seq": 3}) == 64 * 6  # the coefficient 4 is aligned to 64


@pytest.mark.parametrize("make, match", [
    (lambda: BufferUse("a", 10, 3, 2), "live range"),
    (lambda: BufferUse("a", 10, -1, 2), "live range"),
    (lambda: BufferUse("a", -10, 0, 2), "negative"),
    (lambda: BufferUse("a", "4*+", 0, 2), "bad dim"),
    (lambda: plan_memory([BufferUse("a", 1, 0, 0), BufferUse("a", 2, 1, 1)]), "twice"),
    (lambda: plan_memory([BufferUse("a", 1, 0, 0)], alignment=0), "alignment"),
])
def test_bad_input_names_the_buffer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --- properties ------------------------------------------------------------------------------------

SYMBOLS = ("batch", "seq")


@st.composite
def sizes(draw, symbolic: bool):
    """A size: an int, or (symbolic) a polynomial with non-negative coefficients whose constant
    term may be negative but no more than the other coefficients add up to (>= 0 for symbols >= 1)."""
    if not symbolic or draw(st.integers(0, 3)) == 0:
        return draw(st.integers(0, 5000))
    terms = {}
    for mono in draw(st.lists(st.sampled_from([("batch",), ("seq",), ("batch", "seq")]), min_size=1,
                              max_size=3, unique=True)):
        terms[mono] = draw(st.integers(1, 3000))
    const = draw(st.integers(-sum(terms.values()), 3000))
    d = const
    for mono, c in terms.items():
        d = dims.add(d, dims.mul(c, "*".join(mono)))
    return d


@st.composite
def buffer_sets(draw, symbolic: bool):
    n = draw(st.integers(0, 14))
    out = []
    for i in range(n):
        first = draw(st.integers(0, 12))
        last = first + draw(st.integers(0, 5))
        out.append(BufferUse(f"t{i}", draw(sizes(symbolic)), first, last))
    return out


@given(buffer_sets(symbolic=False), st.sampled_from([1, 8, 64, 256]))
def test_static_plans_are_valid_and_bounded(bufs, alignment):
    plan = plan_memory(bufs, alignment)
    assert isinstance(plan.size, int)
    _check(bufs, plan)
    assert _lower_bound(bufs) <= plan.size <= _no_reuse(bufs, alignment)


@given(buffer_sets(symbolic=True), st.sampled_from([1, 16, 64]),
       st.lists(st.fixed_dictionaries({s: st.integers(1, 300) for s in SYMBOLS}), min_size=1, max_size=20))
def test_symbolic_plans_are_valid_for_every_binding(bufs, alignment, envs):
    plan = plan_memory(bufs, alignment)
    for env in [{s: 1 for s in SYMBOLS}, *envs]:
        _check(bufs, plan, env)
        live = _lower_bound([BufferUse(b.value, dims.evaluate(b.nbytes, env), b.first, b.last) for b in bufs])
        assert live <= plan.peak(env)
    doc = plan.to_json()
    assert json.loads(json.dumps(doc)) == doc
