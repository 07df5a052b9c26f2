"""Compute sub-APIs of the embedded cloud over real HTTP, as Nova 34 answers them: a server's
metadata, tags, ips, password, rescue and console; the flavor list's filters; keypair checks;
quota classes; the microversion ceiling (the real-cloud tier's differential check sends the same
calls to a real Nova)."""
from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from test_compute import action, boot, nova, nova_error, wait_for, wait_gone
from waiting import wait_until

MISSING = "6d2a1c4e-0b7f-4c1e-9a55-2f1d3c4b5a60"


def test_metadata_is_merged_replaced_and_kept_item_by_item(member):
    server = boot(member, f"ns-meta-{uuid.uuid4().hex[:6]}", metadata={"color": "blue"})
    path = f"/servers/{server['id']}/metadata"
    try:
        wait_for(member, server["id"], "ACTIVE")
        merged = nova(member, "POST", path, json={"metadata": {"shape": "round"}})
        assert (merged.status_code, merged.json()) == (200, {"metadata": {"color": "blue", "shape": "round"}})
        item = nova(member, "PUT", f"{path}/size", json={"meta": {"size": "big"}})
        assert (item.status_code, item.json()) == (200, {"meta": {"size": "big"}})
        assert nova(member, "GET", f"{path}/size").json() == {"meta": {"size": "big"}}
        assert nova(member, "DELETE", f"{path}/color").status_code == 204
        assert nova(member, "GET", path).json() == {"metadata": {"shape": "round", "size": "big"}}
        replaced = nova(member, "PUT", path, json={"metadata": {"only": "this"}})
        assert (replaced.status_code, replaced.json()) == (200, {"metadata": {"only": "this"}})
        shown = nova(member, "GET", f"/servers/{server['id']}").json()["server"]
        assert shown["metadata"] == {"only": "this"}
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")


def test_metadata_errors_in_novas_order(member, cloud_factory):
    server = boot(member, f"ns-meta-{uuid.uuid4().hex[:6]}")
    path, missing = f"/servers/{server['id']}/metadata", f"/servers/{MISSING}/metadata"
    try:
        # the body is checked before the server is looked up
        nova_error(nova(member, "POST", missing, json={"metadata": {"a/b": "1"}}), 400, "badRequest",
                   "Invalid input for field/attribute metadata. Value: {'a/b': '1'}. 'a/b' does not match any "
                   "of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'")
        nova_error(nova(member, "PUT", f"{path}/a", json={"meta": {"a": "1", "b": "2"}}), 400, "badRequest",
                   "Invalid input for field/attribute meta. Value: {'a': '1', 'b': '2'}. "
                   "{'a': '1', 'b': '2'} has too many properties")
        not_found = f"Instance {MISSING} could not be found."
        for method, url, body in (("GET", missing, None), ("PUT", missing, {"metadata": {}}),
                                  ("POST", missing, {"metadata": {"a": "1"}}), ("GET", f"{missing}/a", None),
                                  ("PUT", f"{missing}/a", {"meta": {"b": "1"}}), ("DELETE", f"{missing}/a", None)):
            nova_error(nova(member, method, url, json=body), 404, "itemNotFound", not_found)
        # then the item, then the server's state: a server still building takes no change
        nova_error(nova(member, "PUT", f"{path}/a", json={"meta": {"b": "1"}}), 400, "badRequest",
                   "Request body and URI mismatch")
        nova_error(nova(member, "GET", f"{path}/nothing"), 404, "itemNotFound", "Metadata item was not found")
        nova_error(nova(member, "DELETE", f"{path}/nothing"), 404, "itemNotFound", "Metadata item was not found")
        building = nova(member, "POST", path, json={"metadata": {"a": "1"}})
        if building.status_code != 200:     # unless the build already ended
            nova_error(building, 409, "conflictingRequest",
                       f"Cannot 'update metadata' instance {server['id']} while it is in vm_state building")
        wait_for(member, server["id"], "ACTIVE")
        assert action(member, server["id"], {"lock": None}).status_code == 202
        nova_error(nova(member, "POST", path, json={"metadata": {"a": "1"}}), 409, "conflictingRequest",
                   f"Instance {server['id']} is locked")
        assert action(member, server["id"], {"unlock": None}).status_code == 202
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")


def test_metadata_items_quota_is_a_403(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.1, seed=5)
    member, admin = embedded.session(), embedded.session(admin=True)
    quota = nova(admin, "PUT", f"/os-quota-sets/{member.get_project_id()}", json={"quota_set": {"metadata_items": 2}})
    assert quota.status_code == 200, quota.text
    server = boot(member, "ns-meta-quota", metadata={"a": "1"})
    path = f"/servers/{server['id']}/metadata"
    wait_for(member, server["id"], "ACTIVE")
    assert nova(member, "PUT", f"{path}/b", json={"meta": {"b": "2"}}).status_code == 200
    over = "Maximum number of metadata items exceeds 2"
    nova_error(nova(member, "POST", path, json={"metadata": {"c": "3"}}), 403, "forbidden", over)
    nova_error(nova(member, "PUT", path, json={"metadata": {"x": "1", "y": "2", "z": "3"}}), 403, "forbidden", over)
    assert nova(member, "PUT", f"{path}/a", json={"meta": {"a": "changed"}}).status_code == 200
    assert nova(member, "GET", path).json() == {"metadata": {"a": "changed", "b": "2"}}


def test_flavor_list_filters_and_pages_as_nova_does(member, admin):
    every = nova(member, "GET", "/flavors/detail").json()["flavors"]
    assert [f["id"] for f in every] == sorted(f["id"] for f in every) and "flavors_links" not in \
        nova(member, "GET", "/flavors").json()
    ram = sorted(f["ram"] for f in every)[1]
    bigger = nova(member, "GET", "/flavors/detail", params={"minRam": str(ram)}).json()["flavors"]
    assert bigger and {f["id"] for f in bigger} == {f["id"] for f in every if f["ram"] >= ram}
    disk = max(f["disk"] for f in every)
    assert {f["id"] for f in nova(member, "GET", "/flavors", params={"minDisk": str(disk)}).json()["flavors"]} \
        == {f["id"] for f in every if f["disk"] >= disk}
    first = nova(member, "GET", "/flavors", params={"limit": "1"}).json()
    assert [f["id"] for f in first["flavors"]] == [every[0]["id"]]
    following = urlsplit(first["flavors_links"][0]["href"])
    assert following.path.endswith("/v2.1/flavors")
    assert parse_qs(following.query) == {"limit": ["1"], "marker": [every[0]["id"]]}
    second = nova(member, "GET", "/flavors", params={"limit": "1", "marker": every[0]["id"]}).json()
    assert [f["id"] for f in second["flavors"]] == [every[1]["id"]]
    nova_error(nova(member, "GET", "/flavors", params={"marker": "no-such"}), 400, "badRequest",
               "marker [no-such] not found")
    nova_error(nova(member, "GET", "/flavors", params={"minRam": "big"}), 400, "badRequest",
               "Invalid minRam filter [big]")
    nova_error(nova(member, "GET", "/flavors/detail", params={"minDisk": "1.5"}), 400, "badRequest",
               "Invalid minDisk filter [1.5]")
    nova_error(nova(member, "GET", "/flavors", params={"limit": "-1"}), 400, "badRequest",
               "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'")
    # an admin sees private flavors only when asking for them
    made = nova(admin, "POST", "/flavors", json={"flavor": {"name": f"ns-private-{uuid.uuid4().hex[:6]}", "ram": 64,
                                                            "vcpus": 1, "disk": 1, "os-flavor-access:is_public": False}})
    assert made.status_code == 200, made.text
    private = made.json()["flavor"]["id"]
    try:
        listed = lambda **params: {f["id"] for f in nova(admin, "GET", "/flavors", params=params).json()["flavors"]}  # noqa: E731
        assert private not in listed() and private in listed(is_public="none") and private in listed(is_public="false")
        assert private not in {f["id"] for f in nova(member, "GET", "/flavors", params={"is_public": "none"}).json()["flavors"]}
        nova_error(nova(admin, "GET", "/flavors", params={"is_public": "maybe"}), 400, "badRequest",
                   "Invalid is_public filter [maybe]")
    finally:
        nova(admin, "DELETE", f"/flavors/{private}")


def test_tags_as_nova_keeps_them(member):
    server = boot(member, f"ns-tags-{uuid.uuid4().hex[:6]}", tags=["boot-tag"])
    path = f"/servers/{server['id']}/tags"
    try:
        wait_for(member, server["id"], "ACTIVE")
        assert nova(member, "GET", path, "2.26").json() == {"tags": ["boot-tag"]}
        added = nova(member, "PUT", f"{path}/blue", "2.26")
        assert added.status_code == 201 and added.headers["Location"].endswith(f"/v2.1/servers/{server['id']}/tags/blue")
        assert nova(member, "PUT", f"{path}/blue", "2.26").status_code == 204
        assert nova(member, "GET", f"{path}/blue", "2.26").status_code == 204
        nova_error(nova(member, "GET", f"{path}/red", "2.26"), 404, "itemNotFound",
                   f"Server {server['id']} has no tag 'red'")
        shown = nova(member, "GET", f"/servers/{server['id']}", "2.26").json()["server"]
        assert shown["tags"] == ["boot-tag", "blue"]
        replaced = nova(member, "PUT", path, "2.26", json={"tags": ["a", "b", "a"]})
        assert (replaced.status_code, replaced.json()) == (200, {"tags": ["a", "b"]})
        assert nova(member, "DELETE", f"{path}/a", "2.26").status_code == 204
        nova_error(nova(member, "DELETE", f"{path}/a", "2.26"), 404, "itemNotFound",
                   f"Instance {server['id']} has no tag 'a'")
        nova_error(nova(member, "PUT", path, "2.26", json={"tags": ["x/y"]}), 400, "badRequest",
                   "Invalid input for field/attribute tags/0. Value: x/y. 'x/y' does not match '^[^,/]*$'")
        nova_error(nova(member, "PUT", path, "2.26", json={"tags": [str(n) for n in range(51)]}), 400, "badRequest",
                   f"Invalid input for field/attribute tags. Value: {[str(n) for n in range(51)]}. "
                   f"{[str(n) for n in range(51)]!r} is too long")
        nova_error(nova(member, "PUT", f"{path}/{'x' * 61}", "2.26"), 400, "badRequest",
                   f"Tag '{'x' * 61}' is invalid. It must be a non empty string without characters '/' and ','. "
                   f"Validation error message: '{'x' * 61}' is too long")
        assert nova(member, "DELETE", path, "2.26").status_code == 204
        assert nova(member, "GET", path, "2.26").json() == {"tags": []}
        # before 2.26 the routes do not exist
        nova_error(nova(member, "GET", path, "2.25"), 404, "itemNotFound", "The resource could not be found.")
        assert action(member, server["id"], {"shelve": None}).status_code == 202
        wait_for(member, server["id"], "SHELVED_OFFLOADED")
        nova_error(nova(member, "PUT", f"{path}/late", "2.26"), 409, "conflictingRequest",
                   f"Cannot 'update tag' instance {server['id']} while it is in vm_state shelved_offloaded")
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")


def test_keypair_names_and_keys_are_checked_as_nova_does(member):
    name = f"ns-kp-{uuid.uuid4().hex[:6]}"
    for bad, microversion in (("bad/name", "2.2"), (" lead", "2.2"), ("x" * 256, "2.2"), ("a@b", "2.91")):
        response = nova(member, "POST", "/os-keypairs", microversion, json={"keypair": {"name": bad}})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["badRequest"]["message"].startswith("Invalid input for field/attribute name.")
    for key in ("", "ssh-rsa " + "A" * 2048 + " too-big@example", "ssh-rsa not-base64"):
        nova_error(nova(member, "POST", "/os-keypairs", "2.2", json={"keypair": {"name": name, "public_key": key}}),
                   400, "badRequest", "Keypair data is invalid: failed to generate fingerprint")
    made = nova(member, "POST", "/os-keypairs", "2.92", json={"keypair": {"name": f"{name}@x.y", "public_key": (
        nova(member, "POST", "/os-keypairs", "2.2", json={"keypair": {"name": name}}).json()["keypair"]["public_key"])}})
    assert made.status_code == 201, made.text
    # a taken name is refused only once the key is known good
    nova_error(nova(member, "POST", "/os-keypairs", "2.2", json={"keypair": {"name": name, "public_key": "x"}}),
               400, "badRequest", "Keypair data is invalid: failed to generate fingerprint")
    nova_error(nova(member, "POST", "/os-keypairs", "2.2", json={"keypair": {"name": name}}),
               409, "conflictingRequest", f"Key pair '{name}' already exists.")
    for one in (name, f"{name}@x.y"):
        assert nova(member, "DELETE", f"/os-keypairs/{one}", "2.92").status_code == 204


def test_quota_classes_set_the_defaults_and_a_project_goes_back_to_them(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.1, seed=5)
    member, admin = embedded.session(), embedded.session(admin=True)
    project = member.get_project_id()
    shown = nova(admin, "GET", "/os-quota-class-sets/default", "2.57").json()["quota_class_set"]
    assert shown["id"] == "default" and "server_groups" in shown and "injected_files" not in shown
    old = nova(admin, "GET", "/os-quota-class-sets/default", "2.1").json()["quota_class_set"]
    assert "floating_ips" in old and "server_groups" not in old
    nova_error(nova(member, "GET", "/os-quota-class-sets/default"), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-quota-class-sets:show to be performed.")
    updated = nova(admin, "PUT", "/os-quota-class-sets/default", "2.57",
                   json={"quota_class_set": {"metadata_items": 7}})
    assert updated.status_code == 200 and "id" not in updated.json()["quota_class_set"]
    assert updated.json()["quota_class_set"]["metadata_items"] == 7
    assert nova(member, "GET", f"/os-quota-sets/{project}").json()["quota_set"]["metadata_items"] == 7
    bad = nova(admin, "PUT", "/os-quota-class-sets/default", "2.57", json={"quota_class_set": {"floating_ips": 1}})
    assert bad.status_code == 400, bad.text
    # a project's own limit, then DELETE: back to the class's
    assert nova(admin, "PUT", f"/os-quota-sets/{project}", json={"quota_set": {"metadata_items": 3}}).status_code == 200
    assert nova(member, "GET", f"/os-quota-sets/{project}").json()["quota_set"]["metadata_items"] == 3
    nova_error(nova(member, "DELETE", f"/os-quota-sets/{project}"), 403, "forbidden",
               "Policy doesn't allow os_compute_api:os-quota-sets:delete to be performed.")
    assert nova(admin, "DELETE", f"/os-quota-sets/{project}").status_code == 202
    assert nova(member, "GET", f"/os-quota-sets/{project}").json()["quota_set"]["metadata_items"] == 7


def test_ips_and_password_sub_resources(member):
    server = boot(member, f"ns-ips-{uuid.uuid4().hex[:6]}", networks="auto")
    try:
        wait_for(member, server["id"], "ACTIVE")
        shown = nova(member, "GET", f"/servers/{server['id']}").json()["server"]["addresses"]
        assert shown, "the server should have an address on the auto network"
        ips = nova(member, "GET", f"/servers/{server['id']}/ips").json()
        assert ips == {"addresses": {label: [{"version": a["version"], "addr": a["addr"]} for a in entries]
                                     for label, entries in shown.items()}}
        label = next(iter(shown))
        assert nova(member, "GET", f"/servers/{server['id']}/ips/{label}").json() == {label: ips["addresses"][label]}
        nova_error(nova(member, "GET", f"/servers/{server['id']}/ips/nowhere"), 404, "itemNotFound",
                   "Instance is not a member of specified network")
        assert nova(member, "GET", f"/servers/{server['id']}/os-server-password").json() == {"password": ""}
        assert nova(member, "DELETE", f"/servers/{server['id']}/os-server-password").status_code == 204
        nova_error(nova(member, "GET", f"/servers/{MISSING}/ips"), 404, "itemNotFound",
                   f"Instance {MISSING} could not be found.")
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")


def test_rescue_change_password_and_console_output(member):
    server = boot(member, f"ns-rescue-{uuid.uuid4().hex[:6]}")
    try:
        wait_for(member, server["id"], "ACTIVE")
        assert action(member, server["id"], {"changePassword": {"adminPass": "secret-1"}}).status_code == 202
        nova_error(action(member, server["id"], {"changePassword": {}}), 400, "badRequest",
                   "Invalid input for field/attribute changePassword. Value: {}. 'adminPass' is a required property")
        console = action(member, server["id"], {"os-getConsoleOutput": {"length": 2}})
        assert (console.status_code, console.json()) == (200, {"output": "ANOTHER\nLAST LINE"})
        assert action(member, server["id"], {"os-getConsoleOutput": {}}).json()["output"].count("\n") == 2
        rescued = action(member, server["id"], {"rescue": {"adminPass": "secret-2"}})
        assert (rescued.status_code, rescued.json()) == (200, {"adminPass": "secret-2"})
        wait_for(member, server["id"], "RESCUE")
        nova_error(action(member, server["id"], {"changePassword": {"adminPass": "x"}}), 409, "conflictingRequest",
                   f"Cannot 'changePassword' instance {server['id']} while it is in vm_state rescued")
        nova_error(action(member, server["id"], {"rescue": None}), 409, "conflictingRequest",
                   f"Cannot 'rescue' instance {server['id']} while it is in vm_state rescued")
        assert action(member, server["id"], {"unrescue": None}).status_code == 202
        wait_for(member, server["id"], "ACTIVE")
        events = [a["action"] for a in nova(member, "GET", f"/servers/{server['id']}/os-instance-actions").json()[
            "instanceActions"]]
        assert {"changePassword", "rescue", "unrescue"} <= set(events)
        assert len(action(member, server["id"], {"rescue": None}).json()["adminPass"]) == 12
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")


def test_an_older_nova_s_microversion_ceiling(cloud_factory):
    from novastress_locust.fakecloud.cli import build_parser
    embedded = cloud_factory(faults="none", delay_scale=0.1, max_microversion="2.60")
    member = embedded.session()
    assert nova(member, "GET", "/").json()["version"]["version"] == "2.60"
    assert nova(member, "GET", "/servers", "latest").headers["OpenStack-API-Version"] == "compute 2.60"
    nova_error(nova(member, "GET", "/servers", "2.61"), 406, "computeFault",
               "Version 2.61 is not supported by the API. Minimum is 2.1 and maximum is 2.60.")
    parser = build_parser()
    assert parser.parse_args(["--max-microversion", "2.79"]).max_microversion == 79
    for bad in ("3.1", "2.105", "2.x", "2"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--max-microversion", bad])


def test_the_server_list_filters_by_address_as_nova_does(member):
    server = boot(member, f"ns-ip-{uuid.uuid4().hex[:6]}", networks="auto")
    try:
        wait_for(member, server["id"], "ACTIVE")
        address = next(a["addr"] for entries in nova(member, "GET", f"/servers/{server['id']}").json()["server"][
            "addresses"].values() for a in entries if a["version"] == 4)
        def listed(microversion: str = "2.5", **params: str) -> list[str]:
            return [s["id"] for s in nova(member, "GET", "/servers", microversion, params=params).json()["servers"]]
        assert server["id"] in listed(ip=address) and server["id"] in listed(ip=address.rsplit(".", 1)[0])
        assert server["id"] not in listed(ip="10.255.255.255") and server["id"] not in listed(ip6="fd00:")
        # before 2.5 a member's ip6 filter is dropped, as Nova drops it
        assert server["id"] in listed("2.4", ip6="fd00:")
        assert server["id"] not in listed(ip="." + address)        # anchored at the start, as re.match
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")


def test_an_update_is_checked_and_keeps_what_it_sets(member):
    server = boot(member, f"ns-upd-{uuid.uuid4().hex[:6]}", accessIPv4="192.0.2.7", **{"OS-DCF:diskConfig": "AUTO"})
    path = f"/servers/{server['id']}"
    try:
        assert server["OS-DCF:diskConfig"] == "AUTO"
        wait_for(member, server["id"], "ACTIVE")
        updated = nova(member, "PUT", path, "2.75", json={"server": {
            "name": "ns-renamed", "accessIPv6": "2001:db8::7", "OS-DCF:diskConfig": "MANUAL"}})
        assert updated.status_code == 200, updated.text
        view = updated.json()["server"]
        assert (view["name"], view["accessIPv4"], view["accessIPv6"], view["OS-DCF:diskConfig"]) == (
            "ns-renamed", "192.0.2.7", "2001:db8::7", "MANUAL")
        # before 2.75 the answer leaves out what only a GET shows
        assert "OS-EXT-STS:vm_state" not in nova(member, "PUT", path, "2.74", json={"server": {}}).json()["server"]
        for body, field in (({"name": ""}, "name"), ({"name": " x"}, "name"), ({"name": "x" * 256}, "name"),
                            ({"accessIPv4": "300.1.1.1"}, "accessIPv4"), ({"accessIPv6": "192.0.2.1"}, "accessIPv6"),
                            ({"OS-DCF:diskConfig": "SOMETIMES"}, "OS-DCF:diskConfig")):
            response = nova(member, "PUT", path, "2.75", json={"server": body})
            assert response.status_code == 400 and f"field/attribute {field}." in response.text, (body, response.text)
        nova_error(nova(member, "PUT", path, "2.18", json={"server": {"description": "d"}}), 400, "badRequest",
                   "Invalid input for field/attribute server. Value: {'description': 'd'}. Additional properties are "
                   "not allowed ('description' was unexpected)")
        assert nova(member, "PUT", path, "2.90", json={"server": {"hostname": "web-1"}}).json()["server"][
            "OS-EXT-SRV-ATTR:hostname"] == "web-1"
        nova_error(nova(member, "PUT", path, "2.104", json={"server": {"pinned_availability_zone": "elsewhere"}}),
                   409, "conflictingRequest",
                   "Server can only be pinned to its current availability zone 'nova', but 'elsewhere' was requested.")
        pinned = nova(member, "PUT", path, "2.104", json={"server": {"pinned_availability_zone": "nova"}})
        assert pinned.json()["server"]["pinned_availability_zone"] == "nova"
        # a missing server, once the body is right
        nova_error(nova(member, "PUT", f"/servers/{MISSING}", "2.75", json={"server": {"name": "x"}}), 404,
                   "itemNotFound", f"Instance {MISSING} could not be found.")
    finally:
        nova(member, "DELETE", path)


def test_a_rebuild_answers_as_nova_does_at_each_microversion(member):
    """Nova's rebuild view: before 2.75 addresses carry only version and addr and the GET-only
    attributes are left out; from 2.57 the server's user_data (the boot's, or the rebuild's new
    one) is added; an IPv6 access address is shown in its canonical form (Tempest's checks)."""
    server = boot(member, f"ns-rbd-{uuid.uuid4().hex[:6]}", networks="auto", user_data="Ym9vdA==",
                  accessIPv6="0000:0000:0000:0000:0000:babe:220.12.22.2")
    path = f"/servers/{server['id']}"
    try:
        shown = wait_for(member, server["id"], "ACTIVE")
        assert shown["accessIPv6"] == "::babe:dc0c:1602"
        assert all({"OS-EXT-IPS:type", "OS-EXT-IPS-MAC:mac_addr"} <= set(address)
                   for addresses in shown["addresses"].values() for address in addresses), shown["addresses"]
        image = shown["image"]["id"]
        old = nova(member, "POST", f"{path}/action", "2.56", json={"rebuild": {"imageRef": image}})
        assert old.status_code == 202, old.text
        view = old.json()["server"]
        assert "user_data" not in view and "OS-EXT-STS:vm_state" not in view
        assert view["addresses"] and all(set(address) == {"version", "addr"} for addresses in view["addresses"].values()
                                         for address in addresses), view["addresses"]
        wait_for(member, server["id"], "ACTIVE")
        kept = nova(member, "POST", f"{path}/action", "2.57", json={"rebuild": {"imageRef": image}})
        assert kept.json()["server"]["user_data"] == "Ym9vdA=="
        wait_for(member, server["id"], "ACTIVE")
        new = nova(member, "POST", f"{path}/action", "2.75", json={"rebuild": {"imageRef": image,
                                                                                "user_data": "bmV3"}})
        view = new.json()["server"]
        assert view["user_data"] == "bmV3" and "OS-EXT-STS:vm_state" in view
        assert all("OS-EXT-IPS:type" in address for addresses in view["addresses"].values() for address in addresses)
    finally:
        nova(member, "DELETE", path)


def test_security_groups_are_added_to_and_removed_from_a_server_s_ports(member):
    """Nova's addSecurityGroup/removeSecurityGroup act on the server's Neutron ports, with Nova's
    errors: no name, an unknown group, a server without ports, a group it does not have."""
    network = {"service_type": "network"}
    name = f"ns-sg-{uuid.uuid4().hex[:6]}"
    group = member.post("/v2.0/security-groups", json={"security_group": {"name": name}},
                        endpoint_filter=network).json()["security_group"]
    server = boot(member, f"ns-sgs-{uuid.uuid4().hex[:6]}", networks="auto")
    portless = boot(member, f"ns-sgn-{uuid.uuid4().hex[:6]}", networks="none")
    action_path = f"/servers/{server['id']}/action"
    try:
        wait_for(member, server["id"], "ACTIVE")
        assert nova(member, "POST", action_path, json={"addSecurityGroup": {"name": name}}).status_code == 202
        ports = member.get(f"/v2.0/ports?device_id={server['id']}", endpoint_filter=network).json()["ports"]
        assert ports and all(group["id"] in port["security_groups"] for port in ports), ports
        shown = nova(member, "GET", f"/servers/{server['id']}").json()["server"]
        assert {"name": name} in shown["security_groups"], shown["security_groups"]
        assert nova(member, "POST", action_path, json={"removeSecurityGroup": {"name": name}}).status_code == 202
        ports = member.get(f"/v2.0/ports?device_id={server['id']}", endpoint_filter=network).json()["ports"]
        assert all(group["id"] not in port["security_groups"] for port in ports), ports
        nova_error(nova(member, "POST", action_path, json={"removeSecurityGroup": {"name": name}}), 404,
                   "itemNotFound", f"Security group {name} not associated with the instance {server['id']}")
        nova_error(nova(member, "POST", action_path, json={"addSecurityGroup": {}}), 400, "badRequest",
                   "Security group not specified")
        nova_error(nova(member, "POST", action_path, json={"addSecurityGroup": {"name": " "}}), 400, "badRequest",
                   "Security group name cannot be empty")
        project = member.get_project_id()
        nova_error(nova(member, "POST", action_path, json={"addSecurityGroup": {"name": "ns-nothing"}}), 404,
                   "itemNotFound", f"Security group ns-nothing is not found for project {project}")
        wait_for(member, portless["id"], "ACTIVE")
        nova_error(nova(member, "POST", f"/servers/{portless['id']}/action", json={"addSecurityGroup": {"name": name}}),
                   404, "itemNotFound", f"instance_id {portless['id']} could not be found as device id on any ports")
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")
        nova(member, "DELETE", f"/servers/{portless['id']}")
        wait_gone(member, server["id"])
        member.delete(f"/v2.0/security-groups/{group['id']}", endpoint_filter=network)


def test_the_actions_of_a_deleted_server_from_2_21(member):
    server = boot(member, f"ns-gone-{uuid.uuid4().hex[:6]}")
    wait_for(member, server["id"], "ACTIVE")
    assert nova(member, "DELETE", f"/servers/{server['id']}").status_code == 204
    path = f"/servers/{server['id']}/os-instance-actions"
    wait_until(lambda: nova(member, "GET", f"/servers/{server['id']}").status_code == 404, "the server deleted",
               15, interval=0.1)
    actions = nova(member, "GET", path, "2.21").json()["instanceActions"]
    assert [a["action"] for a in actions] == ["delete", "create"]
    shown = nova(member, "GET", f"{path}/{actions[0]['request_id']}", "2.21")
    assert shown.status_code == 200 and shown.json()["instanceAction"]["action"] == "delete"
    nova_error(nova(member, "GET", path, "2.20"), 404, "itemNotFound", f"Instance {server['id']} could not be found.")


def test_a_boot_is_checked_as_nova_checks_it(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.1, seed=9)
    member, admin = embedded.session(), embedded.session(admin=True)
    image = nova(member, "GET", "/images", "2.35").json()["images"][0]["id"]

    def boot_with(microversion: str = "2.37", **fields):
        body = {"name": "ns-check", "imageRef": image, "flavorRef": "42", "networks": "none", **fields}
        return nova(member, "POST", "/servers", microversion, json={"server": body})

    for fields, field in (({"min_count": 0}, "min_count"), ({"max_count": "x"}, "max_count"),
                          ({"metadata": {"a/b": "1"}}, "metadata"), ({"metadata": {"a": "x" * 256}}, "a"),
                          ({"accessIPv4": "1.2.3"}, "accessIPv4"), ({"name": " padded"}, "name")):
        response = boot_with(**fields)
        assert response.status_code == 400 and f"field/attribute {field}" in response.text, (fields, response.text)
    nova_error(boot_with(min_count=3, max_count=2), 400, "badRequest", "min_count must be <= max_count")
    nova_error(boot_with(security_groups=[{"name": "no-such-group"}]), 400, "badRequest",
               "Security group no-such-group not found.")
    nova_error(boot_with(metadata={f"k{n}": "v" for n in range(129)}), 403, "forbidden",
               "Maximum number of metadata items exceeds 128")
    files = [{"path": f"/etc/f{n}", "contents": "aGk="} for n in range(6)]
    nova_error(boot_with("2.56", personality=files), 403, "forbidden", "Personality file limit exceeded")
    assert boot_with("2.56", personality=[{"path": "/etc/f", "contents": "not base64!"}]).status_code == 400
    assert boot_with("2.57", personality=files[:1]).status_code == 400
    reserved = boot_with(return_reservation_id=True)
    assert reserved.status_code == 202 and set(reserved.json()) == {"reservation_id"}
    # a quota that leaves room for two of min 1 / max 3: two are made
    assert nova(admin, "PUT", f"/os-quota-sets/{member.get_project_id()}",
                json={"quota_set": {"instances": 3}}).status_code == 200
    assert boot_with(min_count=1, max_count=3, name="ns-many").status_code == 202
    listed = nova(member, "GET", "/servers", params={"name": "^ns-"}).json()["servers"]
    assert len(listed) == 3     # the reservation boot and two of these
    nova_error(boot_with(min_count=2, max_count=2), 403, "forbidden",
               "Quota exceeded for instances: Requested 2, but already used 3 of 3 instances")


def test_a_project_s_default_security_group_comes_with_its_first_network_call(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.1, seed=4)
    admin = embedded.session(admin=True)
    identity, network = f"{embedded.base_url}/identity/v3", f"{embedded.base_url}/networking/v2.0"
    unused = admin.post(f"{identity}/projects", json={"project": {"name": "ns-unused", "domain_id": "default"}}
                        ).json()["project"]["id"]
    groups = lambda: admin.get(f"{network}/security-groups").json()["security_groups"]  # noqa: E731
    assert not [g for g in groups() if g["project_id"] == unused]
    admin.delete(f"{identity}/projects/{unused}")
    assert not [g for g in groups() if g["project_id"] == unused]     # nothing left behind
    member = embedded.session()
    mine = member.get(f"{network}/security-groups").json()["security_groups"]
    assert [g["name"] for g in mine if g["project_id"] == member.get_project_id()] == ["default"]


def _images_named(session, name: str) -> list[dict]:
    return session.get("/v2/images", endpoint_filter={"service_type": "image"}, params={"name": name}).json()["images"]


def test_a_shelve_makes_the_shelved_image_and_unshelve_and_delete_remove_it(member):
    name = f"ns-shelve-{uuid.uuid4().hex[:6]}"
    server = boot(member, name)
    try:
        wait_for(member, server["id"], "ACTIVE")
        assert action(member, server["id"], {"shelve": None}).status_code == 202
        # nova-api makes it before it answers: a snapshot of the server, uploaded as it offloads
        (image,) = _images_named(member, f"{name}-shelved")
        assert (image["image_type"], image["instance_uuid"]) == ("snapshot", server["id"])
        wait_for(member, server["id"], "SHELVED_OFFLOADED")
        assert [i["status"] for i in _images_named(member, f"{name}-shelved")] == ["active"]
        assert action(member, server["id"], {"unshelve": None}).status_code == 202
        wait_for(member, server["id"], "ACTIVE")
        assert _images_named(member, f"{name}-shelved") == []
        # shelved again, then deleted: the image goes with the server
        assert action(member, server["id"], {"shelve": None}).status_code == 202
        wait_for(member, server["id"], "SHELVED_OFFLOADED")
        assert len(_images_named(member, f"{name}-shelved")) == 1
    finally:
        nova(member, "DELETE", f"/servers/{server['id']}")
    wait_until(lambda: _images_named(member, f"{name}-shelved") == [], "the shelved image deleted", 15,
               interval=0.1)


def test_the_deprecated_v2_and_a_project_id_in_the_url_are_served_as_nova_serves_them(member):
    root = member.get_endpoint(service_type="compute", interface="public").removesuffix("/v2.1")
    project = member.get_project_id()
    advertised = member.get(root + "/", authenticated=False).json()["versions"]
    v2 = next(version for version in advertised if version["id"] == "v2.0")
    document = member.get(v2["links"][0]["href"], authenticated=False)
    assert (document.status_code, document.json()["version"]["id"]) == (200, "v2.0")
    assert member.get(f"{root}/v2/{project}/", authenticated=False).json()["version"]["status"] == "DEPRECATED"

    # v2.0: v2.1's API, the microversion asked for is ignored and none is reported
    legacy = member.get(f"{root}/v2/flavors/detail", headers={"OpenStack-API-Version": "compute 2.80"})
    assert legacy.status_code == 200 and "OpenStack-API-Version" not in legacy.headers
    assert legacy.headers["x-compute-request-id"].startswith("req-")
    assert "rxtx_factor" in legacy.json()["flavors"][0]             # a 2.1 view (gone at 2.102)
    newest = nova(member, "GET", "/flavors/detail", microversion="2.102").json()["flavors"][0]
    assert "rxtx_factor" not in newest

    for prefix in (f"/v2/{project}", f"/v2.1/{project}"):
        listed = member.get(f"{root}{prefix}/servers", raise_exc=False)
        assert (listed.status_code, list(listed.json())) == (200, ["servers"]), prefix
        stranger = member.get(f"{root}{prefix.replace(project, '0' * 32)}/servers", raise_exc=False)
        assert stranger.status_code == 400
        assert "doesn't match Context's project_id" in stranger.json()["badRequest"]["message"]
    assert member.get(f"{root}/v2/{project}", raise_exc=False).status_code == 404
    assert member.get(f"{root}/v2/os-nothing", raise_exc=False).status_code == 404
