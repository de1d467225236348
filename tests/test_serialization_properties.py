"""Property-based round trips (hypothesis): any nested Python value, and numpy arrays of any dtype, shape and
memory order, come back identical through `put`/`get`, through a task's argument and result, and through a `put`
and `get` inside a task. Small values travel inline; values over 100 KB go through shared memory, so every
strategy also runs with a large companion array that pushes the whole value into a segment.

"Identical" is strict: same types all the way down, the same bits for floats (NaN stays NaN, -0.0 stays -0.0),
the same dtype, shape and bytes for arrays (numpy's own pickle turns some big-endian dtypes native, e.g.
'>M8[Y]': that, with the same values, is accepted). Public API only: runs on both backends (on Ray without
bytearrays, which Ray 2.60 gives back as bytes)."""
import datetime
import decimal
import fractions
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import BACKEND

# One runtime serves all examples of a test (function-scoped fixture, by design); no deadline: workers share 2 cores.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=False, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

PADDING = np.arange(20_000, dtype=np.float64)  # 160 KB: a value holding it goes to shared memory


# ---------------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**64, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True), st.complex_numbers(allow_nan=True),
    st.text(), st.binary(), st.fractions(), st.decimals(allow_nan=False),
    st.dates(), st.datetimes(), st.timedeltas(),
)
hashables = st.one_of(st.integers(), st.text(max_size=10), st.binary(max_size=10), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(hashables, children, max_size=5),
        st.frozensets(hashables, max_size=5),
        st.sets(hashables, max_size=5),
    ) | (st.builds(bytearray, st.binary(max_size=20)) if BACKEND == "course" else st.nothing()),
    max_leaves=25,
)

dtypes = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(endianness="?"), hnp.unsigned_integer_dtypes(endianness="?"),
    hnp.floating_dtypes(endianness="?"), hnp.complex_number_dtypes(endianness="?"),
    hnp.datetime64_dtypes(endianness="?"), hnp.timedelta64_dtypes(endianness="?"),
    hnp.byte_string_dtypes(max_len=8), hnp.unicode_string_dtypes(endianness="?", max_len=8),
    hnp.array_dtypes(subtype_strategy=hnp.scalar_dtypes(), max_size=3, allow_subarrays=True),
)


@st.composite
def arrays(draw):
    """An array of any dtype and shape (0-d and empty included), laid out C, Fortran, strided or transposed."""
    dtype = draw(dtypes)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    array = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["C", "F", "strided", "transposed"]))
    if layout == "F":
        array = np.asfortranarray(array)
    elif layout == "strided" and array.ndim:
        array = array[::2]
    elif layout == "transposed":
        array = array.T
    return array


# ------------------------------------------------------------------------------------------------ equality


def identical(a, b):
    """Strict equality: same types recursively, floats bit for bit (NaN == NaN), arrays by dtype, shape and bytes."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.generic):  # numpy scalars: compared as 0-d arrays (NaT == NaT, bit for bit)
        return identical(np.asarray(a), np.asarray(b))
    if isinstance(a, np.ndarray):
        # numpy's own pickle may turn a big-endian dtype native (e.g. '>M8[Y]'), with the same values: allowed
        if b.dtype not in (a.dtype, a.dtype.newbyteorder("=")) or a.shape != b.shape:
            return False
        if a.dtype.hasobject:
            return all(identical(x, y) for x, y in zip(a.ravel(), b.ravel()))
        return a.astype(b.dtype).tobytes() == b.tobytes()  # in C order: the same bits, NaN and -0.0 included
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, complex):
        return identical(a.real, b.real) and identical(a.imag, b.imag)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if isinstance(a, decimal.Decimal):
        return a.as_tuple() == b.as_tuple()
    return a == b


def test_identical_is_strict():
    assert identical(float("nan"), float("nan")) and not identical(0.0, -0.0) and not identical(1, True)
    assert not identical(np.zeros(2, "<f8"), np.zeros(2, ">f8")) and not identical(np.zeros(2), np.zeros(3))
    assert identical({"a": [1, (2.5, b"x")]}, {"a": [1, (2.5, b"x")]})
    assert not identical(fractions.Fraction(1, 2), 0.5) and identical(datetime.date(2020, 1, 1),
                                                                       datetime.date(2020, 1, 1))


# ------------------------------------------------------------------------------------------- round trips


def _through_everything(ray, value):
    """The value back from: put/get in the driver, a task's argument and result, and put/get inside a task."""

    @ray.remote
    def echo(x):
        return x

    @ray.remote
    def put_and_get_inside(boxed):  # boxed in a list: the task receives the ref itself, not its value
        return ray.get(ray.put(ray.get(boxed[0])))

    stored = ray.put(value)
    return {"put/get": ray.get(stored, timeout=60), "task argument and result": ray.get(echo.remote(value),
                                                                                        timeout=60),
            "put/get inside a task": ray.get(put_and_get_inside.remote([stored]), timeout=60)}


def _check(ray, value):
    for path, back in _through_everything(ray, value).items():
        assert identical(value, back), f"{path}: {value!r} came back as {back!r}"


@SETTINGS
@given(value=values)
def test_nested_python_values_round_trip(ray_start, value):
    _check(ray_start, value)


@SETTINGS
@given(value=values)
def test_nested_python_values_round_trip_through_shared_memory(ray_start, value):
    _check(ray_start, [value, PADDING])


@SETTINGS
@given(array=arrays())
def test_numpy_arrays_of_any_dtype_shape_and_order_round_trip(ray_start, array):
    _check(ray_start, array)


@SETTINGS
@given(array=arrays(), value=values)
def test_numpy_arrays_inside_nested_values_round_trip_through_shared_memory(ray_start, array, value):
    _check(ray_start, {"array": array, "value": value, "padding": PADDING, "again": [array]})


@pytest.mark.parametrize("dtype", ["bool", "int8", ">i2", "<u4", "int64", "float16", ">f4", "float64", "complex128",
                                   "datetime64[ns]", ">m8[s]", "S7", "<U5", ">U3",
                                   [("x", "<i4"), ("y", ">f8", (2,)), ("name", "U4")]])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "transposed"])
def test_large_arrays_of_every_kind_round_trip_through_shared_memory(ray_start, dtype, layout):
    """Arrays of 0.06 to 2 MB, each dtype and layout, through a segment. Numeric C- or Fortran-ordered arrays
    travel out of band: they come back zero-copy, read-only (as in Ray) and in their order. (numpy pickles strided
    arrays, datetimes and strings in band: those come back as copies.)"""
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=(300, 200 * np.dtype(dtype).itemsize), dtype=np.uint8)
    array = raw.view(dtype).reshape(300, 200)
    array = {"C": array, "F": np.asfortranarray(array), "strided": array[::3, 1::2], "transposed": array.T}[layout]
    results = _through_everything(ray_start, array)
    for path, back in results.items():
        assert identical(array, back), f"{path}: the {dtype} array ({layout}) came back different"
    if layout in ("C", "F") and array.dtype.kind in "biufc":  # numpy pickles these out of band: zero-copy
        assert results["put/get"].flags.f_contiguous == (layout == "F")
        assert not results["put/get"].flags.writeable


def test_object_arrays_and_zero_size_values_round_trip(ray_start):
    values = [np.array([1, "two", None, 3.5, [4]], dtype=object), np.zeros((0, 3)), np.zeros(()), np.float64(-0.0),
              np.int8(-5), np.datetime64("NaT"), np.array(["", "é"], dtype="U1"), b"", "", (), [], {}]
    for value in values:
        _check(ray_start, value)
        _check(ray_start, [value, PADDING])
