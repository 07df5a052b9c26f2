"""Record grouping and matching on verbatim real Nova 34 log excerpts."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from logwatch import Matcher, PatternError, RecordGrouper, parse_records

# verbatim excerpts of a real Nova 34's logs
REAL = Path(__file__).resolve().parent / "real-nova"



def excerpt(name: str) -> str:
    return (REAL / name).read_text()


# file -> (records, line count of each multi-line record in order)
EXPECTED = {
    "errors-neutron-down-delete.txt": (1, [347]),
    "errors-resize-no-valid-host.txt": (2, [23]),
    "nova-api.log.txt": (21, [2]),
    "nova-compute.log.txt": (16, [27]),
    "nova-conductor.log.txt": (4, [70]),
    "nova-scheduler.log.txt": (23, []),
    "race-delete-during-build.txt": (12, []),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_excerpts_group_into_records(name):
    text = excerpt(name)
    records = parse_records(text)
    count, multi = EXPECTED[name]
    assert len(records) == count
    assert [len(r.lines) for r in records if len(r.lines) > 1] == multi
    # nothing lost, nothing invented
    assert [line for r in records for line in r.lines] == text.splitlines()
    assert all(r.timestamp for r in records)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_chunking_gives_the_same_records(name):
    text = excerpt(name)
    whole = [r.lines for r in parse_records(text)]
    rng = random.Random(name)
    grouper = RecordGrouper()
    got, position = [], 0
    while position < len(text):
        size = rng.choice([1, 7, 100, 4096])
        got += [r.lines for r in grouper.feed(text[position:position + size])]
        position += size
    tail = grouper.flush()
    got += [tail.lines] if tail else []
    assert got == whole


def test_traceback_record_fields_and_ids():
    record, = parse_records(excerpt("errors-neutron-down-delete.txt"))
    assert (record.level, record.logger, record.pid) == ("ERROR", "nova.compute.manager", "18814")
    assert record.request_id == "req-3e860532-09e0-4e54-9823-cd66bb33a2ce"
    assert record.global_request_id is None            # the client sent none: literal None
    assert record.instance == "80d91c66-1a99-4d99-b61e-40b3d30fe3cb"
    ids = record.request_ids()
    assert ids[:2] == ["req-3e860532-09e0-4e54-9823-cd66bb33a2ce", "80d91c66-1a99-4d99-b61e-40b3d30fe3cb"]
    assert all(len(i) != 32 for i in ids)                # keystone user/project ids are not resources
    assert record.lines[-1].endswith("nova.compute.manager [instance: 80d91c66-1a99-4d99-b61e-40b3d30fe3cb] ")
    summary = record.summary()
    assert "\n" not in summary and len(summary) <= 240
    assert summary.startswith("ERROR nova.compute.manager: [instance: 80d91c66")


def test_global_request_id_comes_first():
    records = parse_records(excerpt("nova-compute.log.txt"))
    first = records[0]
    assert first.global_request_id == "req-5ca1ab1e-0000-4000-8000-00000000a002"
    assert first.request_ids()[:2] == ["req-5ca1ab1e-0000-4000-8000-00000000a002",
                                       "req-b41add8f-4a4d-4737-bf94-8c90bfa9a045"]
    no_context = [r for r in records if r.message.startswith("[instance: 453c39e4") and "deallocate" in r.message]
    assert no_context and no_context[0].request_id is None
    assert no_context[0].request_ids() == ["453c39e4-ae0e-4fcd-b50b-8cc5e725c677"]


def test_conductor_remote_traceback_is_one_record():
    records = parse_records(excerpt("nova-conductor.log.txt"))
    failed = records[2]
    assert failed.message.startswith("Failed to schedule instances")
    assert failed.request_id == "req-45eee671-49c7-4d92-864c-14acb1b9ccac"
    assert "" in failed.lines                           # Python's blank lines of the remote traceback
    assert any(line.endswith("ERROR nova.conductor.manager Traceback (most recent call last):")
               for line in failed.lines)


def test_default_pattern_finds_errors_only():
    matcher = Matcher.build()
    hits = {name: [(r.logger, len(r.lines)) for r in parse_records(excerpt(name)) if matcher.matches(r)]
            for name in EXPECTED}
    assert hits == {
        "errors-neutron-down-delete.txt": [("nova.compute.manager", 347)],
        "errors-resize-no-valid-host.txt": [],          # a WARNING, even with a remote traceback
        "nova-api.log.txt": [("stevedore.extension", 1)],
        "nova-compute.log.txt": [("oslo_messaging.rpc.server", 27)],
        "nova-conductor.log.txt": [("stevedore.extension", 1), ("nova.conductor.manager", 70)],
        "nova-scheduler.log.txt": [],
        "race-delete-during-build.txt": [],
    }


def test_ignore_and_custom_patterns():
    records = parse_records(excerpt("nova-conductor.log.txt"))
    ignoring = Matcher.build(ignore="oslo_cache.memcache_pool")
    assert [r.logger for r in records if ignoring.matches(r)] == ["nova.conductor.manager"]
    warnings = Matcher.build(patterns=r" WARNING ", ignore=None)
    resize = parse_records(excerpt("errors-resize-no-valid-host.txt"))
    assert sum(warnings.matches(r) for r in resize) == 2
    with pytest.raises(PatternError, match="--log-ignore"):
        Matcher.build(ignore="(unclosed")


def test_unterminated_line_waits_and_clean_text_gives_nothing():
    grouper = RecordGrouper()
    assert grouper.feed("2026-11-28 05:30:27.188 19859 ERROR x [-] half") == []
    assert grouper.flush() is None                       # no newline yet: not a record
    done = grouper.feed(" done\n")
    assert done == [] and grouper.flush().lines == ["2026-11-28 05:30:27.188 19859 ERROR x [-] half done"]
    assert parse_records("") == []
    blank = parse_records("\n\n")                       # blank lines: no crash, no error
    assert [r.lines for r in blank] == [[""], [""]] and not any(map(Matcher.build().matches, blank))


def test_default_pattern_reads_levels_not_messages():
    lines = [f"{TS} 1 INFO nova.compute.manager [-] [instance: {UUID}] vm_state ERROR, retrying",
             f"{TS} 1 WARNING nova.scheduler.utils [-] [instance: {UUID}] Setting instance to ERROR state.",
             f"{TS} 1 WARNING nova.compute.manager [-] Retrying: ConnectFailure",
             f"{TS} 1 ERROR nova.compute.manager Traceback (most recent call last):",
             f"{TS} 1 ERROR nova.compute.manager ConnectFailure: refused",
             f"{TS} 1 CRITICAL nova [-] Unhandled error"]
    records = parse_records("\n".join(lines) + "\n")
    assert [len(r.lines) for r in records] == [1, 1, 3, 1]
    default = Matcher.build()
    assert [default.matches(r) for r in records] == [False, False, True, True]
    egrep = Matcher.build("ERROR|TRACE")                 # a user pattern: every line, whole
    assert [egrep.matches(r) for r in records] == [True, True, True, False]
    # another format in the glob: one record per line, Tempest's egrep on it
    other = parse_records("Jan  1 00:00:00 node kernel: ERROR in something\nJan  1 00:00:01 node ok\n")
    assert [default.matches(r) for r in other] == [True, False]

TS = "2026-11-28 05:41:32.753"
UUID = "80d91c66-1a99-4d99-b61e-40b3d30fe3cb"
