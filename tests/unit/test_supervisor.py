from sentinel.service.supervisor import RestartPolicy


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_backoff_doubles_and_rate_limit_gives_up():
    clock = Clock()
    p = RestartPolicy(first_delay=1, max_delay=8, max_restarts=3, window_s=100, clock=clock)
    waits = []
    for _ in range(3):
        p.failed()
        start = clock.t
        while not p.due():
            clock.t += 0.25
        waits.append(clock.t - start)
    assert waits == [1, 2, 4]
    p.failed()
    clock.t += 50
    assert p.exhausted and not p.due()
    clock.t += 100  # old restarts leave the window: trying again is allowed
    assert not p.exhausted and p.due()


def test_backoff_resets_after_a_healthy_run():
    clock = Clock()
    p = RestartPolicy(first_delay=1, clock=clock)
    p.failed()
    clock.t = 1
    assert p.due() and p.delay == 2
    clock.t = 100
    p.healthy_for(30)
    assert p.delay == 1
