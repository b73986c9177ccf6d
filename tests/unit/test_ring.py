import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.capture.ring import RingBuffer


@settings(max_examples=200)
@given(capacity=st.integers(1, 64), chunks=st.lists(st.integers(0, 100), max_size=20),
       start=st.integers(0, 400), n=st.integers(1, 80))
def test_reads_return_exactly_what_was_written_or_nothing(capacity, chunks, start, n):
    ring, stream = RingBuffer(capacity), np.zeros(0, np.float32)
    for size in chunks:
        chunk = np.arange(stream.size, stream.size + size, dtype=np.float32)
        ring.write(chunk)
        stream = np.concatenate([stream, chunk])
    assert ring.written == stream.size
    assert ring.oldest == max(0, stream.size - capacity)
    got = ring.read(start, n)
    available = start >= ring.oldest and start + n <= stream.size and n <= capacity
    if available:
        np.testing.assert_array_equal(got, stream[start : start + n])
    else:
        assert got is None


@settings(max_examples=200)
@given(capacity=st.integers(1, 64), chunks=st.lists(st.integers(0, 100), max_size=20), n=st.integers(1, 80))
def test_tail_is_the_newest_audio_still_held(capacity, chunks, n):
    ring, stream = RingBuffer(capacity), np.zeros(0, np.float32)
    for size in chunks:
        chunk = np.arange(stream.size, stream.size + size, dtype=np.float32)
        ring.write(chunk)
        stream = np.concatenate([stream, chunk])
    got = ring.tail(n)
    want = stream[max(0, stream.size - min(n, capacity)):]
    if want.size == 0:
        assert got is None
    else:
        np.testing.assert_array_equal(got, want)
