import torch
from hypothesis import given
from hypothesis import strategies as st

from sentinel.windows import sliding_windows


@given(n=st.integers(0, 3000), size=st.integers(1, 400), hop=st.integers(1, 400))
def test_windows_cover_the_recording_exactly(n, size, hop):
    wave = torch.arange(n, dtype=torch.float32)
    w = sliding_windows(wave, size, hop)
    assert w.samples.shape == (len(w.starts), size)
    if n < size:
        assert w.starts == []
        return
    assert w.starts[0] == 0 and w.starts[-1] == n - size  # nothing at the end goes unscored
    assert all(b > a for a, b in zip(w.starts, w.starts[1:], strict=False))
    assert all(b - a <= hop for a, b in zip(w.starts, w.starts[1:], strict=False))
    for start, row in zip(w.starts, w.samples, strict=True):
        assert torch.equal(row, wave[start : start + size])
