"""Storm rounds in this process, without a Locust run: a user of the storm against the embedded
cloud over real HTTP, one Round at a pool member, each move checked on the cloud's own answers."""
from __future__ import annotations

import random

import pytest
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import Events

from cleanup_helpers import Api
from locust_runs import cli_credentials
from novastress_locust import options as novastress_options
from novastress_locust.invariants import invariants
from novastress_locust.state import run_state
from novastress_locust.storm import StormUser
from novastress_locust.storm.catalog import choose, dead_ends, enabled_actions, fire
from novastress_locust.storm.rounds import race_plan
from novastress_locust.storm.pool import Round, refill, storm_state
from novastress_locust.waiter import WaitError
from waiting import wait_until


class Stormer(StormUser):
    abstract = True


@pytest.fixture
def stormer(cloud_factory):
    """A storm user set up against a quiet embedded cloud; its leftovers are deleted after the test."""
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=21)
    api = Api(cloud, cloud.session())
    image = api.get(f"{api.image}/images")["images"][0]["id"]
    flavor = api.get(f"{api.compute}/flavors")["flavors"][0]["id"]
    parser = LocustArgumentParser()
    novastress_options.add_arguments(parser)
    options = parser.parse_args([*cli_credentials(cloud), "--image", image, "--flavor", flavor,
                                 "--status-poll-interval", "0.1", "--build-timeout", "20",
                                 "--delete-timeout", "20", "--storm-delete-ratio", "0",
                                 "--storm-delete-delay-max", "0.5", "--storm-peer", "none"])
    options.stop_on_error = False
    environment = Environment(events=Events(), parsed_options=options)
    environment.create_local_runner()
    state = run_state(environment)
    state.prefix, state.run_id = "ns", "rnd1"
    user = Stormer(environment)
    user.on_start()
    yield user, api
    user.cleanup()


def server_status(api: Api, server_id: str) -> str | None:
    response = api.session.get(f"{api.compute}/servers/{server_id}", raise_exc=False)
    return None if response.status_code == 404 else response.json()["server"]["status"]


def a_round(user: StormUser) -> Round:
    storm = storm_state(user.environment)
    refill(user, storm)                           # --storm-delete-ratio 0: a plain boot
    member = next(iter(storm.members.values()))
    return Round(user, storm, member, None, invariants(user.environment))


def test_a_member_deleted_by_its_round_leaves_the_pool_and_the_cloud(stormer):
    user, api = stormer
    round = a_round(user)
    assert server_status(api, round.member.id) == "ACTIVE"
    assert round.member.name in user.tracked
    assert round.delete(user.client) is True
    assert round.member.id not in round.storm.members
    assert round.member.name not in user.tracked        # the invariants follow it, not the cleanup
    wait_until(lambda: server_status(api, round.member.id) is None, "the member gone", timeout=20)
    assert round.delete(user.client) is False            # already gone: a 404, not accepted


def test_a_refused_action_is_a_conflict_row_not_a_failure(stormer):
    user, api = stormer
    round = a_round(user)
    assert fire(round, user.client, "unpause", round.show()) is False       # ACTIVE: Nova answers 409
    stats = user.environment.runner.stats
    assert stats.get("unpause", "CONFLICT").num_requests == 1
    assert stats.get("unpause", "CONFLICT").num_failures == 0
    assert fire(round, user.client, "pause", round.show()) is True
    wait_until(lambda: server_status(api, round.member.id) == "PAUSED", "the member paused", timeout=20)


def test_an_unshelve_plan_shelves_then_deletes_while_the_unshelve_is_in_flight(stormer):
    user, api = stormer
    round = a_round(user)
    assert race_plan(round, "unshelve", round.show()) is True
    stats = user.environment.runner.stats
    for name, method in [("compute POST /servers/{id}/action shelve", "POST"),
                         ("compute POST /servers/{id}/action unshelve", "POST"),
                         ("compute DELETE /servers/{id} (storm)", "DELETE")]:
        assert stats.get(name, method).num_requests == 1, (name, sorted(stats.entries))
    assert round.member.id not in round.storm.members
    wait_until(lambda: server_status(api, round.member.id) is None, "the member gone", timeout=20)


def test_a_plan_does_nothing_with_a_member_that_is_busy(stormer):
    user, _api = stormer
    round = a_round(user)
    busy = dict(round.show(), **{"OS-EXT-STS:task_state": "rebooting"})
    assert race_plan(round, "unshelve", busy) is False
    assert race_plan(round, "attach_volume", dict(round.show(), status="BUILD")) is False
    assert round.member.id in round.storm.members


def test_a_volume_left_reserved_for_a_deleted_member_is_reset_and_deleted(stormer, caplog):
    # what a real Nova leaves when an attach races the server's DELETE (a 500, BDMNotFound):
    # Cinder keeps the volume reserved for the gone server, and only an admin can free it
    user, api = stormer
    round = a_round(user)
    volume = user.create_volume()                   # waited for: available
    response = api.session.post(f"{api.volume}/attachments", headers={"OpenStack-API-Version": "volume 3.27"},
                                json={"attachment": {"volume_uuid": volume["id"], "instance_uuid": round.member.id}})
    assert response.status_code == 200, response.text
    assert round.delete(user.client) is True
    wait_until(lambda: server_status(api, round.member.id) is None, "the member gone", timeout=20)
    user.options.delete_timeout = 1                 # the reservation is not waited out for long
    admin = api.cloud.credentials(admin=True)       # as --os-admin-*: the reset is an admin's
    user.options.os_admin_username, user.options.os_admin_password = admin["username"], admin["password"]
    user.options.os_admin_project_name = admin["project_name"]
    user.delete_tracked(user.tracked[volume["name"]])
    gone = api.session.get(f"{api.volume}/volumes/{volume['id']}", raise_exc=False)
    assert gone.status_code == 404, gone.text
    assert volume["name"] not in user.tracked and not user.state.leaks
    assert f"volume {volume['name']} stayed reserved, reserved for server {round.member.id} which no longer " \
           f"exists (an attach that raced its delete); reset it as admin" in caplog.text


def test_a_volume_reserved_for_a_live_server_is_not_reset(stormer):
    user, api = stormer
    round = a_round(user)
    volume = user.create_volume()
    new_attach = {"OpenStack-API-Version": "volume 3.27"}
    attachment = api.session.post(f"{api.volume}/attachments", headers=new_attach, json={"attachment": {
        "volume_uuid": volume["id"], "instance_uuid": round.member.id}}).json()["attachment"]
    user.options.delete_timeout = 1
    with pytest.raises(WaitError, match=r"still reserved after 1 s"):
        user.delete_tracked(user.tracked[volume["name"]])
    assert api.get(f"{api.volume}/volumes/{volume['id']}")["volume"]["status"] == "reserved"
    api.session.delete(f"{api.volume}/attachments/{attachment['id']}", headers=new_attach)


def test_a_round_chooses_the_way_back_half_the_time_and_mostly_what_nova_accepts():
    rng = random.Random(5)
    names = ["soft_reboot", "stop", "start", "unshelve", "pause"]
    shelved = [choose(rng, names, "SHELVED_OFFLOADED") for _ in range(400)]
    assert 0.8 <= shelved.count("unshelve") / 400 <= 0.95      # the way back, or a fitting action
    active = [choose(rng, names, "ACTIVE") for _ in range(400)]
    fitting = sum(name in ("soft_reboot", "stop", "pause") for name in active) / 400
    assert 0.8 <= fitting < 1.0                                  # sometimes any, to provoke refusals


def test_actions_that_leave_a_member_where_nothing_enabled_takes_it_on_are_named():
    assert dead_ends(enabled_actions("all")) == []
    assert dead_ends(enabled_actions("resize,revert_resize,pause,hard_reboot,soft_reboot")) == []
    lines = dead_ends(enabled_actions("resize,stop,soft_reboot"))
    assert [line.split(" leaves")[0] for line in lines] == ["--storm-actions: resize", "--storm-actions: stop"]
    assert "in VERIFY_RESIZE" in lines[0] and "(add confirm_resize or revert_resize)" in lines[0]
    assert "in SHUTOFF" in lines[1] and "(add start or hard_reboot)" in lines[1]
