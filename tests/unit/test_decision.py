import pytest

from sentinel.scoring.decision import Decider


def feed(decider, scores, hop=0.5, window=1.0):
    return [e for i, s in enumerate(scores) if (e := decider.update(i * hop, i * hop + window, s))]


def test_one_event_gives_one_alert():
    events = feed(Decider(threshold=1.0, k=2, n=3, cooldown_s=5), [0, 0, 3, 4, 5, 6, 5, 4, 0, 0])
    assert len(events) == 1
    e = events[0]
    assert (e.start_s, e.end_s, e.peak) == (1.0, 2.5, 4)


def test_debounce_ignores_a_single_spike():
    assert feed(Decider(threshold=1.0, k=2, n=3), [0, 5, 0, 0, 5, 0, 0]) == []
    assert len(feed(Decider(threshold=1.0, k=1, n=1), [0, 5, 0])) == 1


def test_cooldown_then_a_new_event():
    scores = [5, 0, 0, 5, 0] + [0] * 20 + [5]
    events = feed(Decider(threshold=1.0, k=1, n=1, cooldown_s=5.0), scores)
    assert [e.start_s for e in events] == [0.0, 12.5]


def test_bad_debounce_is_refused():
    with pytest.raises(ValueError, match="k <= n"):
        Decider(1.0, k=3, n=2)


def test_event_is_open_from_the_alert_until_cooldown_after_it():
    d = Decider(threshold=1.0, k=1, n=1, cooldown_s=2.0)
    states = []
    for i, s in enumerate([0, 5, 5, 0, 0, 0, 0, 0, 0]):
        d.update(i * 0.5, i * 0.5 + 1.0, s)
        states.append(d.event_open())
    # on at the alert, on while anomalous, off once 2 s of stream have passed since the alert's end
    assert states == [False, True, True, True, True, False, False, False, False]


def test_a_closed_event_reports_its_real_peak_and_end():
    d = Decider(threshold=1.0, k=1, n=1, cooldown_s=5)
    closed = []
    for i, s in enumerate([0, 3, 9, 40, 7, 0, 0]):
        opened = d.update(i * 0.5, i * 0.5 + 1.0, s)
        if opened:
            assert opened.peak == 3  # what opened it: the alert goes out at once
        closed += [e for e in [d.closed()] if e]
    assert len(closed) == 1
    e = closed[0]
    assert (e.start_s, e.end_s, e.peak) == (0.5, 3.0, 40)  # the event went on to 40 and ended with its 5th window
    assert d.closed() is None  # handed over once
