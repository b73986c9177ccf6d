"""The history one stream carries for the span component (see scorer.py)."""

from __future__ import annotations

from collections import deque

import torch


class SpanState:
    """The rolling history one stream (a recording, a live source) carries for the span component:
    the last `n` windows' profiles. Windows must be pushed in stream order; `reset` after a gap."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._items: deque[torch.Tensor] = deque(maxlen=n)

    def push(self, profile: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Add one window's profile; (mean over the span so far, how many windows it holds)."""
        self._items.append(profile)
        return torch.stack(tuple(self._items)).mean(0), len(self._items)

    def reset(self) -> None:
        self._items.clear()
