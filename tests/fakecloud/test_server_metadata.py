"""A server's metadata API and the flavor list's filters in the embedded cloud, over real HTTP, as
Nova 34 answers them (the real-cloud tier's differential check compares the same calls with it)."""
from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

from test_compute import action, boot, nova, nova_error, wait_for

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
