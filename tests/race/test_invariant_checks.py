"""The end-of-run Placement checks in this process, without a Locust run: the invariants of an
environment with admin credentials against a quiet embedded cloud over real HTTP, whose
allocations the test writes itself through Placement's API."""
from __future__ import annotations

import uuid

import pytest
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import Events

from cleanup_helpers import Api
from locust_runs import cli_credentials
from novastress_locust import options as novastress_options
from novastress_locust.invariants import invariants
from novastress_locust.state import run_state

PLACEMENT_HEADERS = {"OpenStack-API-Version": "placement 1.28"}


@pytest.fixture
def checked(cloud_factory):
    """(the run's invariants, an admin Api) on a cloud with one live server of the run."""
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=5)
    parser = LocustArgumentParser()
    novastress_options.add_arguments(parser)
    options = parser.parse_args([*cli_credentials(cloud, admin=True), "--status-poll-interval", "0.1"])
    environment = Environment(events=Events(), parsed_options=options)
    environment.create_local_runner()
    state = run_state(environment)
    state.prefix, state.run_id = "ns", "inv1"
    api = Api(cloud, cloud.session(admin=True))
    api.server("ns-inv1-live")
    return invariants(environment), api


def allocate(api: Api, consumer: str) -> None:
    """Hold 1 VCPU for `consumer` on the cloud's first provider, as a late PUT would."""
    placement = f"{api.cloud.base_url}/placement"
    provider = api.session.get(f"{placement}/resource_providers",
                               headers=PLACEMENT_HEADERS).json()["resource_providers"][0]["uuid"]
    response = api.session.put(f"{placement}/allocations/{consumer}", headers=PLACEMENT_HEADERS, json={
        "allocations": {provider: {"resources": {"VCPU": 1}}}, "consumer_generation": None,
        "project_id": uuid.uuid4().hex, "user_id": uuid.uuid4().hex}, raise_exc=False)
    assert response.status_code == 204, response.text


def kinds(checks) -> list[str]:
    return [violation.kind for violation in checks.violations]


def test_live_servers_alone_match_their_providers_usage(checked):
    checks, _api = checked
    checks.check_provider_usages(checks.admin())
    assert checks.violations == []


def test_a_leak_of_a_server_the_run_touched_is_one_leak_not_also_a_usage_error(checked):
    checks, api = checked
    gone = str(uuid.uuid4())                     # a server of the run's, deleted since
    checks.touched(gone, "req-" + str(uuid.uuid4()))
    allocate(api, gone)
    checks.check_provider_usages(checks.admin())
    assert kinds(checks) == ["placement-allocations-leak"], checks.violations
    assert checks.violations[0].subject == gone and "VCPU=1" in checks.violations[0].detail


def test_allocations_nobody_explains_are_a_usage_error(checked):
    checks, api = checked
    allocate(api, str(uuid.uuid4()))             # not a server, not the run's
    checks.check_provider_usages(checks.admin())
    assert kinds(checks) == ["resource-provider-usage"], checks.violations
    assert "VCPU 2 != 1 of its live servers" in checks.violations[0].detail
