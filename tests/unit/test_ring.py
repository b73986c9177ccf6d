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


@settings(max_examples=200)
@given(chunks=st.lists(st.tuples(st.integers(1, 800), st.floats(0, 30)), min_size=1, max_size=30))
def test_timeline_stamps_audio_when_it_was_heard_across_gaps(chunks):
    """Chunks of audio arrive with pauses between them (a reconnect, a stalled device): every
    sample's wall-clock time is when it arrived, within the gap tolerance, however many gaps."""
    from sentinel.capture.source import Timeline

    sr = 100
    tl, pos, now = Timeline(sr, gap_tolerance_s=1.0), 0, 1_000_000.0
    truth = []  # (first sample position, its true wall-clock time)
    for n, pause in chunks:
        now += pause + n / sr  # silence for `pause` s, then n samples at real-time pace
        tl.note(pos, n, now)
        truth.append((pos, now - n / sr))
        pos += n
    for p, t in truth:
        assert abs(tl.unix(p, 0.0) - t) <= 1.0 + 1e-6
    lost = sum(pause for _, pause in chunks[1:])
    assert tl.lost_s <= lost + 1e-6
    assert tl.lost_s >= lost - (len(chunks) - 1) * 1.0 - 1e-6  # pauses under the tolerance may be kept


def test_timeline_reports_where_audio_resumed():
    from sentinel.capture.source import Timeline

    tl = Timeline(100)
    tl.note(0, 300, 3.0)
    tl.note(300, 100, 50.0, resumed=True)  # reconnected 46 s later
    assert tl.breaks(0, 300) is None
    assert tl.breaks(250, 350) == 300  # a window there would splice before and after the outage
    assert tl.unix(350, 0.0) == 49.5
    assert tl.lost_s == 46.0 and tl.gaps == 1
