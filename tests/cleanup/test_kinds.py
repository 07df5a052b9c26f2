"""The one registry of resource kinds (kinds.KINDS) against the embedded cloud over real HTTP,
through both clients that use it: the load's OpenStackClient (a user's tracking, the storm's
take-back) and novastress-cleanup's Cloud (the final sweep, `novastress-cleanup`). For every kind:
found by its exact name, shown, deleted, shown as gone; a second delete is no error."""
from __future__ import annotations

import pytest
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.event import Events

from cleanup_helpers import Api, check_every_kind
from locust_runs import cli_credentials
from novastress_locust import options as novastress_options
from novastress_locust.cleanup import Settings, connect
from novastress_locust.client import OpenStackClient
from novastress_locust.kinds import KINDS
from novastress_locust.state import run_state


def one_of_each(admin: Api, prefix: str) -> dict[str, tuple[str, str]]:
    """kind -> (id, name) of one resource of every kind, all the admin's."""
    made: dict[str, tuple[str, str]] = {}
    server = admin.server(f"{prefix}-server")
    made["server"] = (server["id"], f"{prefix}-server")
    made["image"] = (admin.server_image(server["id"], f"{prefix}-image"), f"{prefix}-image")
    made["floating_ip"] = (admin.floating_ip(f"{prefix}-floating-ip")["id"], f"{prefix}-floating-ip")
    volume = admin.volume_(f"{prefix}-volume")
    made["volume"] = (volume["id"], f"{prefix}-volume")
    made["volume_snapshot"] = (admin.snapshot(volume["id"], f"{prefix}-snapshot")["id"], f"{prefix}-snapshot")
    admin.keypair(f"{prefix}-keypair")
    made["keypair"] = (f"{prefix}-keypair", f"{prefix}-keypair")
    made["server_group"] = (admin.server_group(f"{prefix}-group")["id"], f"{prefix}-group")
    made["security_group"] = (admin.security_group(f"{prefix}-secgroup")["id"], f"{prefix}-secgroup")
    project = admin.post(f"{admin.identity}/projects", {"project": {"name": f"{prefix}-project",
                                                                    "domain_id": "default"}})["project"]
    made["project"] = (project["id"], f"{prefix}-project")
    user = admin.post(f"{admin.identity}/users", {"user": {"name": f"{prefix}-user", "domain_id": "default",
                                                           "password": "Kinds-pw-1"}})["user"]
    made["user"] = (user["id"], f"{prefix}-user")
    return made


def load_client(cloud) -> OpenStackClient:
    parser = LocustArgumentParser()
    novastress_options.add_arguments(parser)
    environment = Environment(events=Events(), parsed_options=parser.parse_args(cli_credentials(cloud, admin=True)))
    environment.create_local_runner()
    state = run_state(environment)
    return OpenStackClient(state, state.ensure_target(), "kinds")


@pytest.mark.parametrize("client", ["load", "cleanup"])
def test_every_kind_is_found_shown_and_deleted_the_same_way_by_both_clients(cloud_factory, client):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=3)
    made = one_of_each(Api(cloud, cloud.session(admin=True)), f"ns-k{client[0]}")
    assert set(made) == set(KINDS)
    load = load_client(cloud)
    call = load.request if client == "load" else connect(load.target, Settings(timeout=120)).call
    check_every_kind(call, made, timeout=20)
    if client == "load":   # the load's calls are Locust requests, one statistics row per kind and method
        names = set(load.state.environment.runner.stats.entries)
        assert ("compute DELETE /os-keypairs/{name}", "DELETE") in names, sorted(names)
        assert ("volume GET /volumes/{id}", "GET") in names, sorted(names)
