"""The end-of-run statistics at scale: Tempest's per-user lines for a small run, one line per
worker and user class past --summary-max-users, every user still in --summary-json."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

from locust_runs import cli_credentials, run_locust
from novastress_locust import summary
from novastress_locust.state import run_state


def state_with(users: dict[str, tuple[int, int]], workers: dict[str, dict[str, tuple[int, int]]], most: int):
    environment = SimpleNamespace(runner=None, parsed_options=SimpleNamespace(summary_max_users=most))
    state = run_state(environment)
    state.tally = {user: {"server_create_destroy": list(counts)} for user, counts in users.items()}
    state.worker_tallies = {client: {user: {"server_create_destroy": list(counts)} for user, counts in tally.items()}
                            for client, tally in workers.items()}
    return state


def test_many_users_are_one_line_per_worker_and_class_with_who_failed():
    workers = {"host_aaaaaaaa11": {f"ServerCreateDestroy-{n}": (n % 5 + 1, 1 if n in (7, 40) else 0)
                                   for n in range(1, 151)},
               "host_bbbbbbbb22": {f"ServerCreateDestroy-{n}": (4, 0) for n in range(1, 151)}}
    text, failed = summary.render(state_with({}, workers, most=50))
    lines = text.splitlines()
    assert lines[1:3] == [
        "aaaaaaaa/ServerCreateDestroy x150 (server_create_destroy): Run 450 actions (2 failed); per user min 1 / "
        "median 3 / max 5; failed: aaaaaaaa/ServerCreateDestroy-7, aaaaaaaa/ServerCreateDestroy-40",
        "bbbbbbbb/ServerCreateDestroy x150 (server_create_destroy): Run 600 actions (0 failed); per user min 4 / "
        "median 4 / max 4"]
    assert lines[3:5] == ["Summary:", "Run 1050 actions (2 failed)"]
    assert failed


def test_a_small_run_keeps_the_exact_tempest_lines_and_many_failures_are_counted_not_listed():
    small = state_with({"ServerCreateDestroy-1": (3, 0), "ServerCreateDestroy-2": (2, 1)}, {}, most=50)
    assert summary.render(small)[0].splitlines()[1:3] == [
        "ServerCreateDestroy-1 (server_create_destroy): Run 3 actions (0 failed)",
        "ServerCreateDestroy-2 (server_create_destroy): Run 2 actions (1 failed)"]
    many = state_with({f"ServerCreateDestroy-{n}": (1, 1) for n in range(1, 31)}, {}, most=5)
    line = summary.render(many)[0].splitlines()[1]
    assert line.endswith("ServerCreateDestroy-10 and 20 more") and line.count("ServerCreateDestroy-") == 10


def test_a_run_past_the_threshold_prints_groups_and_the_json_keeps_every_user(cloud, tmp_path):
    summary_json = tmp_path / "summary.json"
    run = run_locust([*cli_credentials(cloud), "-u", "3", "-t", "5s", "--summary-max-users", "2",
                      "--summary-json", str(summary_json)])
    assert run.returncode == 0, run.output[-3000:]
    assert re.search(r"^ServerCreateDestroy x3 \(server_create_destroy\): Run \d+ actions \(0 failed\); per user "
                     r"min \d+ / median \d+ / max \d+$", run.stdout, re.M), run.stdout[-2000:]
    assert not re.search(r"^ServerCreateDestroy-\d+ \(", run.stdout, re.M)
    assert len(json.loads(summary_json.read_text())["users"]) == 3
