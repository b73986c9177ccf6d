"""The history one stream carries for the span component (see scorer.py)."""

from __future__ import annotations

from collections import deque

import torch


class SpanState:
    """The rolling history one stream (a recording, a live source) carries for the span component:
    the last `n` windows' profiles. Windows must be pushed in stream order; `reset` after a gap.

    The span's mean is trimmed (`trim`: the share of windows dropped at each end, per profile entry):
    the span is there for what persists, a short sound is the window components' to see. With a plain
    mean a 1 s fault stayed in the span for its whole 8 s, and so did the alert (docs/quality.md
    round 9); 0.25 (the interquartile mean) drops the four windows a 1 s sound touches at a 0.5 s hop."""

    def __init__(self, n: int, trim: float = 0.0) -> None:
        self.n = n
        self.trim = trim
        self._items: deque[torch.Tensor] = deque(maxlen=n)

    def push(self, profile: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Add one window's profile; (trimmed mean over the span so far, how many windows it holds)."""
        self._items.append(profile)
        k = len(self._items)
        held = torch.stack(tuple(self._items))
        cut = int(k * self.trim)
        if cut == 0:
            return held.mean(0), k
        return held.sort(dim=0).values[cut:k - cut].mean(0), k

    def reset(self) -> None:
        self._items.clear()
