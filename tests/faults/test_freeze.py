"""The embedded cloud's `freeze` chaos rule: a server's state machine held where it is."""
from __future__ import annotations

from fault_helpers import QUIET_CLOUD, Api, control


def _status(api: Api, server_id: str) -> str:
    response = api.session.get(f"{api.compute}/servers/{server_id}", raise_exc=False)
    return "GONE" if response.status_code == 404 else response.json()["server"]["status"]


def test_freeze_holds_matching_servers_in_build_until_deleted_or_thawed(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    api = Api(cloud, cloud.session())
    rule = control(cloud, "POST", "/chaos", {"rule": {"service": "compute", "kind": "freeze",
                                                      "name": "^stuck-", "count": 2}})
    assert rule.status_code == 201, rule.text
    first = api.server("stuck-1", wait=False)
    second = api.server("stuck-2", wait=False)
    third = api.server("stuck-3", wait=False)     # beyond the rule's count
    free = api.server("free-1")                   # waits until ACTIVE
    Api.wait(lambda: _status(api, third["id"]) == "ACTIVE")
    assert _status(api, first["id"]) == _status(api, second["id"]) == "BUILD"
    listed = control(cloud, "GET", "/chaos").json()["rules"][0]
    assert sorted(listed["frozen"]) == sorted([first["id"], second["id"]]) and listed["hits"] == 2
    # a frozen server can still be deleted, as Nova deletes a server stuck in BUILD
    assert api.session.delete(f"{api.compute}/servers/{first['id']}").status_code == 204
    Api.wait(lambda: _status(api, first["id"]) == "GONE")
    # removing the rules thaws the other one: its build goes on
    assert control(cloud, "DELETE", "/chaos").status_code == 200
    Api.wait(lambda: _status(api, second["id"]) == "ACTIVE")
    assert _status(api, free["id"]) == "ACTIVE"


def test_freeze_rule_needs_a_service_and_never_touches_http(cloud_factory):
    cloud = cloud_factory(**QUIET_CLOUD)
    bad = control(cloud, "POST", "/chaos", {"rule": {"kind": "freeze", "name": "x"}})
    assert bad.status_code == 400 and "needs the service" in bad.text
    bad_name = control(cloud, "POST", "/chaos", {"rule": {"kind": "freeze", "service": "compute",
                                                          "name": "("}})
    assert bad_name.status_code == 400 and "name is not a valid regular expression" in bad_name.text
    control(cloud, "POST", "/chaos", {"rule": {"kind": "freeze", "service": "compute"}})
    api = Api(cloud, cloud.session())
    # a rule without a name holds every server; every API call still answers
    server = api.server("any-name", wait=False)
    assert api.session.get(f"{api.compute}/servers").status_code == 200
    assert _status(api, server["id"]) == "BUILD"
