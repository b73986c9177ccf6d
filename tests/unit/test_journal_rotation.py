"""Journal rotation: a reader that follows with a cursor gets every record once, in order, however
the rotations fall between its reads (and across its own restarts)."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.alerts.journal import Journal, JournalCursor, last_lines, rotated, unsent_lines


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.integers(0, 12), min_size=1, max_size=12), max_bytes=st.integers(60, 400),
       restart_every=st.integers(1, 4))
def test_a_cursor_follows_every_record_across_rotations(tmp_path_factory, batches, max_bytes, restart_every):
    d = tmp_path_factory.mktemp("j")
    path = d / "alerts.jsonl"
    journal = Journal(path, max_bytes=max_bytes, keep=1000)
    cursor = JournalCursor(d / "cursor", path)
    cursor.save()  # a sink's first start: from here on (what the sinks do)
    seen, n = [], 0
    for i, k in enumerate(batches):
        for _ in range(k):
            journal.append({"kind": "alert", "n": n})
            n += 1
        if i % restart_every == 0:  # the sink restarts: a fresh cursor from its file
            cursor = JournalCursor(d / "cursor", path)
        for pos, line in unsent_lines(path, cursor):
            seen.append(json.loads(line)["n"])
            cursor.save(pos)
    for pos, line in unsent_lines(path, cursor):
        seen.append(json.loads(line)["n"])
        cursor.save(pos)
    journal.close()
    assert seen == list(range(n))
    written = sum(f.stat().st_size for f in [path, *rotated(path, 1000)])  # keep=1000: nothing removed
    if written >= max_bytes:  # the bytes it wrote: nine one-digit records (207 B) do not fill 208
        assert rotated(path, 1000)  # it did rotate
    assert [json.loads(x)["n"] for x in last_lines(path, 3)] == list(range(n))[-3:][-len(last_lines(path, 3)):]


def test_only_keep_rotated_journals_are_kept(tmp_path):
    path = tmp_path / "alerts.jsonl"
    journal = Journal(path, max_bytes=50, keep=3)
    for n in range(40):
        journal.append({"kind": "alert", "n": n})
    journal.close()
    assert [p.name for p in rotated(path)] == ["alerts.jsonl.3", "alerts.jsonl.2", "alerts.jsonl.1"]
    assert json.loads(path.with_name("alerts.jsonl.1").read_text().splitlines()[-1])["n"] <= 39
