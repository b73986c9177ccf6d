"""The span's history: a trimmed mean, so that what persists speaks and a short sound does not linger."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.scoring.span import SpanState


# torch's first calls are slow and these machines are shared: no per-example deadline
@settings(deadline=None)
@given(n=st.integers(1, 24), pushed=st.integers(1, 40), dims=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_plain_span_is_the_mean_of_its_last_windows(n, pushed, dims, seed):
    rows = torch.randn(pushed, dims, generator=torch.Generator().manual_seed(seed))
    span = SpanState(n)
    for i, row in enumerate(rows):
        mean, held = span.push(row)
        assert held == min(i + 1, n)
    torch.testing.assert_close(mean, rows[-n:].mean(0))


@settings(deadline=None)
@given(n=st.integers(4, 24), level=st.floats(-50, 50), loud=st.floats(-1e3, 1e3), seed=st.integers(0, 2**16))
def test_a_quarter_of_odd_windows_leaves_the_trimmed_span_where_it_was(n, level, loud, seed):
    """However loud, windows fewer than a quarter of the span (a short sound) do not move it."""
    g = torch.Generator().manual_seed(seed)
    odd = set(torch.randperm(n, generator=g)[: n // 4].tolist())
    span = SpanState(n, trim=0.25)
    for i in range(n):
        mean, _ = span.push(torch.full((3,), loud if i in odd else level))
    torch.testing.assert_close(mean, torch.full((3,), level), atol=1e-4, rtol=1e-5)


def test_reset_forgets_the_history():
    span = SpanState(4, trim=0.25)
    span.push(torch.ones(2) * 9)
    span.reset()
    mean, held = span.push(torch.zeros(2))
    assert held == 1 and torch.equal(mean, torch.zeros(2))
