"""Clip retention: oldest first, by age and by total size; clips being written are left alone."""

import os

from sentinel.alerts.retention import ClipRetention


def _clip(folder, name, kb, age_days, now):
    p = folder / name
    p.write_bytes(b"\0" * kb * 1024)
    os.utime(p, (now - age_days * 86400, now - age_days * 86400))
    return p


def test_oldest_go_first_until_the_rest_fit_and_none_is_kept_past_its_age(tmp_path):
    now = 1_800_000_000.0
    old = _clip(tmp_path, "a.wav", 100, 40, now)  # past 30 days
    b = _clip(tmp_path, "b.wav", 400, 3, now)
    c = _clip(tmp_path, "c.wav", 400, 2, now)
    d = _clip(tmp_path, "d.wav", 400, 1, now)
    writing = _clip(tmp_path, "e.tmp.wav", 900, 50, now)
    r = ClipRetention(tmp_path, max_mb=1.0, max_days=30, clock=lambda: now)
    sweep = r.sweep()
    assert not old.exists() and not b.exists()  # the old one by age, then the oldest until 800 KB fit in 1 MB
    assert c.exists() and d.exists() and writing.exists()
    assert (sweep.removed, sweep.bytes_used) == (2, 800 * 1024)
    assert r.sweep().removed == 0  # nothing more to do
