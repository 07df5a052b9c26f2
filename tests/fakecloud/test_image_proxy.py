"""Nova's image proxy API (`/images`, `/images/{id}/metadata`) of the embedded cloud, over real HTTP,
against its own Glance: views, filters, paging, microversions, deletes and metadata as Nova 34 answers."""
from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from test_compute import IMAGE, action, boot, image_id, nova, nova_error, wait_for

DETAIL_KEYS = {"id", "name", "minRam", "minDisk", "metadata", "created", "updated", "status", "progress",
               "OS-EXT-IMG-SIZE:size", "links"}
NOT_FOUND = "The resource could not be found."
MISSING = "6d2a1c4e-0b7f-4c1e-9a55-2f1d3c4b5a60"
PAYLOAD = b"novastress-image-proxy" * 10


def glance_image(session, name: str, upload: bool = True, **attributes) -> dict:
    """A private image of the session's project made in Glance (uploaded: active; else queued)."""
    image = session.post("/v2/images", endpoint_filter=IMAGE, json={
        "name": name, "disk_format": "raw", "container_format": "bare", "visibility": "private",
        **attributes}).json()
    if upload:
        session.put(f"/v2/images/{image['id']}/file", data=PAYLOAD, endpoint_filter=IMAGE,
                    headers={"Content-Type": "application/octet-stream"})
    return session.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).json()


def glance_delete(session, image_ids) -> None:
    for one in image_ids:
        session.delete(f"/v2/images/{one}", endpoint_filter=IMAGE, raise_exc=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def own_image(member):
    """An active private image of the member's project with two extra properties; deleted after."""
    image = glance_image(member, unique("ns-proxy"), min_ram=512, min_disk=2, color="blue",
                         auto_disk_config="True")
    yield image
    glance_delete(member, [image["id"]])


def test_list_detail_and_show_views(member, cloud, own_image):
    base, image = f"{cloud.base_url}/compute", own_image
    links = [{"rel": "self", "href": f"{base}/v2.1/images/{image['id']}"},
             {"rel": "bookmark", "href": f"{base}/images/{image['id']}"},
             {"rel": "alternate", "type": "application/vnd.openstack.image",
              "href": f"{cloud.base_url}/image/images/{image['id']}"}]
    brief = nova(member, "GET", "/images", params={"name": image["name"]})
    assert brief.status_code == 200, brief.text
    assert brief.json() == {"images": [{"id": image["id"], "name": image["name"], "links": links}]}

    shown = nova(member, "GET", f"/images/{image['id']}")
    assert shown.status_code == 200, shown.text
    view = shown.json()["image"]
    assert set(view) == DETAIL_KEYS | {"OS-DCF:diskConfig"}
    assert view == {"id": image["id"], "name": image["name"], "minRam": 512, "minDisk": 2,
                    "metadata": {"color": "blue", "auto_disk_config": "True"},
                    "created": image["created_at"], "updated": image["updated_at"], "status": "ACTIVE",
                    "progress": 100, "OS-EXT-IMG-SIZE:size": len(PAYLOAD), "links": links,
                    "OS-DCF:diskConfig": "AUTO"}
    detail = nova(member, "GET", "/images/detail", params={"name": image["name"]}).json()
    assert detail == {"images": [view]}
    # the public default image is listed for every project, with no metadata of its own
    everything = nova(member, "GET", "/images/detail").json()["images"]
    default = next(one for one in everything if one["id"] == image_id(member))
    assert set(default) == DETAIL_KEYS and default["metadata"] == {}


def test_a_queued_image_is_saving_with_no_size(member):
    image = glance_image(member, unique("ns-proxy-queued"), upload=False)
    try:
        view = nova(member, "GET", f"/images/{image['id']}").json()["image"]
        assert (view["status"], view["progress"], view["OS-EXT-IMG-SIZE:size"]) == ("SAVING", 25, 0)
    finally:
        glance_delete(member, [image["id"]])


def test_filters(member):
    tag = unique("ns-proxy-filter")
    small = glance_image(member, f"{tag}-small", min_ram=64, batch=tag)
    big = glance_image(member, f"{tag}-big", min_ram=2048, batch=tag, image_type="snapshot",
                       instance_uuid=MISSING)
    queued = glance_image(member, f"{tag}-queued", upload=False, batch=tag)
    try:
        def listed(**params) -> list[str]:
            response = nova(member, "GET", "/images/detail", params={"property-batch": tag, **params})
            assert response.status_code == 200, response.text
            return sorted(one["name"] for one in response.json()["images"])

        assert listed() == sorted([queued["name"], big["name"], small["name"]])
        assert listed(name=small["name"]) == [small["name"]]
        # nova-api hands the status to Glance lowercased: Glance's own statuses, not Nova's
        assert listed(status="QUEUED") == [queued["name"]]
        assert listed(status="SAVING") == []
        assert listed(status="active") == sorted([big["name"], small["name"]])
        assert listed(type="snapshot") == [big["name"]]
        assert listed(minRam="2048") == [big["name"]]     # Glance compares min_ram exactly
        assert listed(server=MISSING) == [big["name"]]
        assert listed(server=f"http://nova.example/v2.1/servers/{MISSING}") == [big["name"]]
        future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        assert listed(**{"changes-since": future}) == []
        assert len(listed(**{"changes-since": past})) == 3
        nova_error(nova(member, "GET", "/images", params={"changes-since": "yesterday"}), 400, "badRequest",
                   '400 Bad Request: Bad "updated_at" query filter format. Use ISO 8601 DateTime notation. '
                   "(HTTP 400)")
    finally:
        glance_delete(member, [small["id"], big["id"], queued["id"]])


def test_paging_links_the_next_page_when_a_limit_fills_it(member, cloud):
    tag = unique("ns-proxy-page")
    made = [glance_image(member, f"{tag}-{n}", batch=tag)["id"] for n in range(3)]
    try:
        unlimited = nova(member, "GET", "/images/detail", params={"property-batch": tag}).json()
        assert "images_links" not in unlimited
        order = [one["id"] for one in unlimited["images"]]     # Glance's: newest first, then by id
        assert sorted(order) == sorted(made)
        first = nova(member, "GET", "/images", params={"property-batch": tag, "limit": "2"}).json()
        assert [one["id"] for one in first["images"]] == order[:2]
        link = first["images_links"]
        assert [entry["rel"] for entry in link] == ["next"]
        href = urlsplit(link[0]["href"])
        assert f"{href.scheme}://{href.netloc}{href.path}" == f"{cloud.base_url}/compute/v2.1/images"
        # Nova's next link: the request's parameters sorted by name, the marker last
        assert href.query == f"limit=2&property-batch={tag}&marker={order[1]}"
        second = member.get(link[0]["href"], raise_exc=False).json()
        assert [one["id"] for one in second["images"]] == order[2:] and "images_links" not in second
        exact = nova(member, "GET", "/images/detail", params={"property-batch": tag, "limit": "3"}).json()
        assert parse_qs(urlsplit(exact["images_links"][0]["href"]).query)["marker"] == [order[2]]
        nova_error(nova(member, "GET", "/images", params={"limit": "-1"}), 400, "badRequest",
                   "Invalid input for query parameters limit. Value: -1. '-1' does not match '^[0-9]*$'")
        nova_error(nova(member, "GET", "/images/detail", params={"marker": MISSING}), 400, "badRequest",
                   f"400 Bad Request: Invalid marker. Image {MISSING} could not be found. (HTTP 400)")
    finally:
        glance_delete(member, made)


@pytest.mark.parametrize("method, path", [
    ("GET", "/images"), ("GET", "/images/detail"), ("GET", "/images/{id}"), ("DELETE", "/images/{id}")])
def test_images_are_gone_from_2_36(member, own_image, method, path):
    path = path.format(id=own_image["id"])
    if method == "GET":
        assert nova(member, method, path, "2.35").status_code == 200
    response = nova(member, method, path, "2.36")
    nova_error(response, 404, "itemNotFound", NOT_FOUND)
    assert response.headers["OpenStack-API-Version"] == "compute 2.36"
    assert member.get(f"/v2/images/{own_image['id']}", endpoint_filter=IMAGE).status_code == 200


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/images/{id}/metadata", None), ("PUT", "/images/{id}/metadata", {"metadata": {"a": "1"}}),
    ("POST", "/images/{id}/metadata", {"metadata": {"a": "1"}}), ("GET", "/images/{id}/metadata/color", None),
    ("PUT", "/images/{id}/metadata/a", {"meta": {"a": "1"}}), ("DELETE", "/images/{id}/metadata/color", None)])
def test_image_metadata_is_gone_from_2_39(member, own_image, method, path, body):
    """Nova dropped the images API at 2.36 but image metadata only at 2.39."""
    path = path.format(id=own_image["id"])
    assert nova(member, method, path, "2.38", json=body).status_code in (200, 204)
    for version in ("2.39", "latest"):
        nova_error(nova(member, method, path, version, json=body), 404, "itemNotFound", NOT_FOUND)


def test_delete_through_nova_deletes_the_glance_image(member):
    image = glance_image(member, unique("ns-proxy-delete"))
    try:
        deleted = nova(member, "DELETE", f"/images/{image['id']}", "2.35")
        assert deleted.status_code == 204 and deleted.content == b""
        assert member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE, raise_exc=False).status_code == 404
        nova_error(nova(member, "GET", f"/images/{image['id']}"), 404, "itemNotFound", "Image not found.")
        nova_error(nova(member, "DELETE", f"/images/{image['id']}"), 404, "itemNotFound", "Image not found.")
    finally:
        glance_delete(member, [image["id"]])
    # the public default image belongs to the admin project: Glance refuses, Nova says so
    default = image_id(member)
    nova_error(nova(member, "DELETE", f"/images/{default}"), 403, "forbidden",
               "You are not allowed to delete the image.")
    assert member.get(f"/v2/images/{default}", endpoint_filter=IMAGE).status_code == 200


def test_metadata_crud_reaches_glance(member, own_image):
    path = f"/images/{own_image['id']}/metadata"

    def in_glance() -> dict:
        shown = member.get(f"/v2/images/{own_image['id']}", endpoint_filter=IMAGE).json()
        return {key: shown.get(key) for key in ("color", "auto_disk_config", "size_hint", "os_distro")}

    assert nova(member, "GET", path).json() == {"metadata": {"color": "blue", "auto_disk_config": "True"}}
    replaced = nova(member, "PUT", path, json={"metadata": {"os_distro": "cirros"}})
    assert (replaced.status_code, replaced.json()) == (200, {"metadata": {"os_distro": "cirros"}})
    assert in_glance() == {"color": None, "auto_disk_config": None, "size_hint": None, "os_distro": "cirros"}
    merged = nova(member, "POST", path, json={"metadata": {"color": "red", "size_hint": "small"}})
    assert merged.json() == {"metadata": {"os_distro": "cirros", "color": "red", "size_hint": "small"}}
    item = nova(member, "PUT", f"{path}/color", json={"meta": {"color": "green"}})
    assert (item.status_code, item.json()) == (200, {"meta": {"color": "green"}})
    assert nova(member, "GET", f"{path}/color").json() == {"meta": {"color": "green"}}
    assert nova(member, "DELETE", f"{path}/size_hint").status_code == 204
    assert in_glance() == {"color": "green", "auto_disk_config": None, "size_hint": None, "os_distro": "cirros"}
    view = nova(member, "GET", f"/images/{own_image['id']}").json()["image"]
    assert view["metadata"] == {"os_distro": "cirros", "color": "green"} and "OS-DCF:diskConfig" not in view


def test_a_metadata_write_makes_a_shared_image_private(member):
    """nova-api writes back the visibility it read as Glance v1's is_public."""
    image = glance_image(member, unique("ns-proxy-shared"), visibility="shared")
    try:
        assert image["visibility"] == "shared"
        assert nova(member, "POST", f"/images/{image['id']}/metadata",
                    json={"metadata": {"a": "1"}}).status_code == 200
        shown = member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).json()
        assert (shown["visibility"], shown["a"]) == ("private", "1")
    finally:
        glance_delete(member, [image["id"]])


def test_metadata_errors_in_novas_order(member, own_image):
    path = f"/images/{own_image['id']}/metadata"
    missing = f"/images/{MISSING}/metadata"
    for method, url, body in (("GET", missing, None), ("PUT", missing, {"metadata": {}}),
                              ("POST", missing, {"metadata": {"a": "1"}}), ("GET", f"{missing}/a", None),
                              ("PUT", f"{missing}/a", {"meta": {"a": "1"}}), ("DELETE", f"{missing}/a", None)):
        nova_error(nova(member, method, url, json=body), 404, "itemNotFound", "Image not found.")
    nova_error(nova(member, "GET", f"{path}/nothing"), 404, "itemNotFound", NOT_FOUND)
    nova_error(nova(member, "DELETE", f"{path}/nothing"), 404, "itemNotFound", "Invalid metadata key")
    # the body and the URL are compared before the image is looked up
    nova_error(nova(member, "PUT", f"{missing}/a", json={"meta": {"b": "1"}}), 400, "badRequest",
               "Request body and URI mismatch")
    nova_error(nova(member, "PUT", f"{path}/a", json={"meta": {"a": "1", "b": "2"}}), 400, "badRequest",
               "Invalid input for field/attribute meta. Value: {'a': '1', 'b': '2'}. "
               "{'a': '1', 'b': '2'} has too many properties")
    nova_error(nova(member, "PUT", f"{path}/a", json={"meta": {}}), 400, "badRequest",
               "Invalid input for field/attribute meta. Value: {}. {} should be non-empty")
    nova_error(nova(member, "POST", path, json={"metadata": {"a/b": "1"}}), 400, "badRequest",
               "Invalid input for field/attribute metadata. Value: {'a/b': '1'}. 'a/b' does not match any "
               "of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'")
    long_value = "x" * 256
    nova_error(nova(member, "PUT", path, json={"metadata": {"a": long_value}}), 400, "badRequest",
               f"Invalid input for field/attribute a. Value: {long_value}. '{long_value}' is too long")
    nova_error(nova(member, "PUT", path, json={"metadata": {"a": 1}}), 400, "badRequest",
               "Invalid input for field/attribute a. Value: 1. 1 is not of type 'string'")
    nova_error(nova(member, "POST", path, json={"meta": {"a": "1"}}), 400, "badRequest",
               "'metadata' is a required property")
    nova_error(nova(member, "POST", path, json={"metadata": {}, "extra": 1}), 400, "badRequest",
               "Additional properties are not allowed ('extra' was unexpected)")
    # the public default image is not the member's: Glance's 403 as Nova words it
    default = image_id(member)
    nova_error(nova(member, "POST", f"/images/{default}/metadata", json={"metadata": {"a": "1"}}), 403,
               "forbidden", f"Not authorized for image {default}.")
    # a key Glance reserves for itself: Glance refuses the change
    nova_error(nova(member, "PUT", f"{path}/os_glance_x", json={"meta": {"os_glance_x": "1"}}), 403,
               "forbidden", f"Not authorized for image {own_image['id']}.")
    # a key naming one of Glance's own attributes: answered, and lost
    kept = nova(member, "PUT", f"{path}/checksum", json={"meta": {"checksum": "1"}})
    assert (kept.status_code, kept.json()) == (200, {"meta": {"checksum": "1"}})
    shown = member.get(f"/v2/images/{own_image['id']}", endpoint_filter=IMAGE).json()
    assert shown["checksum"] == own_image["checksum"]
    assert nova(member, "GET", path).json()["metadata"] == {"color": "blue", "auto_disk_config": "True"}


def test_metadata_items_quota(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.1, seed=5)
    member, admin = embedded.session(), embedded.session(admin=True)
    project_id = member.get_project_id()
    quota = nova(admin, "PUT", f"/os-quota-sets/{project_id}", json={"quota_set": {"metadata_items": 2}})
    assert quota.status_code == 200, quota.text
    image = glance_image(member, "ns-proxy-quota", color="blue")
    path = f"/images/{image['id']}/metadata"
    assert nova(member, "POST", path, json={"metadata": {"shade": "s"}}).status_code == 200
    over = "Image metadata limit exceeded"
    nova_error(nova(member, "POST", path, json={"metadata": {"shape": "round"}}), 403, "forbidden", over)
    nova_error(nova(member, "PUT", f"{path}/shape", json={"meta": {"shape": "round"}}), 403, "forbidden", over)
    nova_error(nova(member, "PUT", path, json={"metadata": {"a": "1", "b": "2", "c": "3"}}), 403, "forbidden",
               over)
    # replacing a key keeps the count: allowed
    assert nova(member, "PUT", f"{path}/shade", json={"meta": {"shade": "m"}}).status_code == 200
    assert nova(member, "GET", path).json() == {"metadata": {"color": "blue", "shade": "m"}}


def test_unsupported_method_is_novas_router_404(member, own_image):
    """Nova routes on path and method: a DELETE of the list (Tempest's blank image id) matches nothing."""
    response = nova(member, "DELETE", "/images/")
    assert response.status_code == 404, response.text
    # webob's own page, as real Nova's router sends it to a client that asks for no JSON
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>404 Not Found</h1>" in response.text and "The resource could not be found." in response.text


def test_server_snapshot_listed_with_its_server(member, cloud):
    server = boot(member, unique("ns-proxy-snap-server"))
    wait_for(member, server["id"], "ACTIVE")
    snapshot = action(member, server["id"], {"createImage": {"name": unique("ns-proxy-snap"),
                                                              "metadata": {"purpose": "test"}}}, "2.45")
    assert snapshot.status_code == 202, snapshot.text
    snapshot_id = snapshot.json()["image_id"]
    try:
        wait_for(member, server["id"], "ACTIVE")
        view = nova(member, "GET", f"/images/{snapshot_id}").json()["image"]
        base = f"{cloud.base_url}/compute"
        assert view["server"] == {"id": server["id"], "links": [
            {"rel": "self", "href": f"{base}/v2.1/servers/{server['id']}"},
            {"rel": "bookmark", "href": f"{base}/servers/{server['id']}"}]}
        assert view["status"] == "ACTIVE" and view["metadata"]["image_type"] == "snapshot"
        assert view["metadata"]["purpose"] == "test" and view["metadata"]["instance_uuid"] == server["id"]
        by_server = nova(member, "GET", "/images/detail", params={"server": server["id"]}).json()["images"]
        assert [one["id"] for one in by_server] == [snapshot_id]
        by_type = nova(member, "GET", "/images", params={"type": "snapshot"}).json()["images"]
        assert snapshot_id in {one["id"] for one in by_type}
        assert nova(member, "DELETE", f"/images/{snapshot_id}").status_code == 204
        assert nova(member, "GET", "/images/detail", params={"server": server["id"]}).json() == {"images": []}
    finally:
        glance_delete(member, [snapshot_id])
        nova(member, "DELETE", f"/servers/{server['id']}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_openstacksdk_compute_image_proxy(cloud, member):
    """openstacksdk's (deprecated) compute image calls: list, show, metadata, delete."""
    import openstack
    connection = openstack.connection.Connection(auth=cloud.credentials(), region_name="RegionOne")
    image = glance_image(member, unique("ns-proxy-sdk"), color="blue")
    try:
        listed = {one.id: one for one in connection.compute.images(details=True)}
        assert listed[image["id"]].status == "ACTIVE" and listed[image["id"]].metadata == {"color": "blue"}
        shown = connection.compute.get_image(image["id"])
        assert (shown.name, shown.min_ram, shown.size) == (image["name"], 0, len(PAYLOAD))
        connection.compute.set_image_metadata(image["id"], shade="dark")
        assert connection.compute.fetch_image_metadata(image["id"]).metadata == {"color": "blue", "shade": "dark"}
        connection.compute.delete_image_metadata(image["id"], ["color"])
        assert member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).json().get("color") is None
        connection.compute.delete_image(image["id"], ignore_missing=False)
        assert member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE, raise_exc=False).status_code == 404
    finally:
        glance_delete(member, [image["id"]])


@pytest.mark.parametrize("accept, content_type", [(None, "text/html"), ("*/*", "text/html"),
                                                  ("application/json", "application/json"),
                                                  ("text/plain", "text/plain")])
def test_glance_errors_are_webobs_pages_and_the_tool_reads_their_explanation(member, accept, content_type):
    """Glance renders its errors with webob: an HTML page unless the client asks for JSON (the tool's
    keystoneauth sends no Accept); the tool's error text is the page's explanation either way."""
    from novastress_locust.errors import error_message
    headers = {"Accept": accept} if accept else {}
    response = member.get(f"/v2/images/{MISSING}", endpoint_filter=IMAGE, raise_exc=False, headers=headers)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith(content_type)
    assert error_message(response) == f"No image found with ID {MISSING}", response.text
