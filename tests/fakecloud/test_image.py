"""Glance v2 of the embedded cloud: discovery, listing, CRUD, upload, errors."""
from __future__ import annotations

import hashlib

import openstack
import requests

IMAGE = {"service_type": "image"}


def test_root_is_glance_versions_document(cloud):
    response = requests.get(f"{cloud.base_url}/image", timeout=10)
    assert response.status_code == 300
    versions = response.json()["versions"]
    assert [v["id"] for v in versions if v["status"] == "CURRENT"] == ["v2.17"]
    assert {"v2.0", "v2.16"} <= {v["id"] for v in versions}
    assert all(v["links"][0]["href"] == f"{cloud.base_url}/image/v2/" for v in versions)
    assert response.headers["x-openstack-request-id"].startswith("req-")


def test_default_image_listed_with_recorded_keys(member, cloud):
    response = member.get("/v2/images", endpoint_filter=IMAGE)
    assert response.status_code == 200
    assert response.headers["x-openstack-request-id"].startswith("req-")
    body = response.json()
    assert body["first"] == "/v2/images" and body["schema"] == "/v2/schemas/images"
    image = next(i for i in body["images"] if i["name"] == "cirros-0.6.2-x86_64-disk")
    recorded = {"name", "disk_format", "container_format", "visibility", "size", "virtual_size",
                "status", "checksum", "protected", "min_ram", "min_disk", "owner", "os_hidden",
                "os_hash_algo", "os_hash_value", "id", "created_at", "updated_at", "tags", "self",
                "file", "schema", "stores"}
    assert recorded <= set(image)
    assert (image["status"], image["visibility"], image["min_disk"]) == ("active", "public", 0)
    assert image["self"] == f"/v2/images/{image['id']}"
    shown = member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).json()
    assert shown["id"] == image["id"]


def test_filters_and_paging(member):
    created = [member.post("/v2/images", json={"name": f"ns-page-{n}", "disk_format": "raw",
                                                "container_format": "bare"},
                           endpoint_filter=IMAGE).json() for n in range(3)]
    try:
        by_name = member.get("/v2/images?name=ns-page-1", endpoint_filter=IMAGE).json()["images"]
        assert [i["id"] for i in by_name] == [created[1]["id"]]
        queued = member.get("/v2/images?status=queued", endpoint_filter=IMAGE).json()["images"]
        assert {c["id"] for c in created} <= {i["id"] for i in queued}
        public = member.get("/v2/images?visibility=public", endpoint_filter=IMAGE).json()["images"]
        assert all(i["visibility"] == "public" for i in public) and public
        first = member.get("/v2/images?limit=2", endpoint_filter=IMAGE).json()
        assert len(first["images"]) == 2 and "next" in first
        second = member.get(first["next"], endpoint_filter=IMAGE).json()
        seen = [i["id"] for i in first["images"] + second["images"]]
        assert len(seen) == len(set(seen))
        everything = member.get("/v2/images", endpoint_filter=IMAGE).json()["images"]
        assert set(seen) <= {i["id"] for i in everything}
    finally:
        for image in created:
            member.delete(f"/v2/images/{image['id']}", endpoint_filter=IMAGE)


def test_create_upload_download_delete(member):
    response = member.post("/v2/images", json={"name": "ns-upload", "disk_format": "raw",
                                               "container_format": "bare", "min_disk": 1},
                           endpoint_filter=IMAGE)
    assert response.status_code == 201
    image = response.json()
    assert (image["status"], image["size"], image["visibility"]) == ("queued", None, "shared")
    payload = b"novastress" * 100
    upload = member.put(f"/v2/images/{image['id']}/file", data=payload,
                        headers={"Content-Type": "application/octet-stream"}, endpoint_filter=IMAGE)
    assert upload.status_code == 204
    shown = member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).json()
    assert shown["status"] == "active" and shown["size"] == len(payload)
    assert shown["checksum"] == hashlib.md5(payload).hexdigest()
    assert shown["os_hash_value"] == hashlib.sha512(payload).hexdigest()
    assert member.get(f"/v2/images/{image['id']}/file", endpoint_filter=IMAGE).content == payload
    assert member.delete(f"/v2/images/{image['id']}", endpoint_filter=IMAGE).status_code == 204
    gone = member.get(f"/v2/images/{image['id']}", endpoint_filter=IMAGE, raise_exc=False)
    assert gone.status_code == 404


def test_errors(member, cloud):
    # webob's JSON error, for a client that asks for JSON (without, an HTML page: test_image_proxy.py)
    missing = member.get("/v2/images/00000000-0000-0000-0000-000000000000", endpoint_filter=IMAGE,
                         raise_exc=False, headers={"Accept": "application/json"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "404 Not Found"
    assert "00000000-0000-0000-0000-000000000000" in missing.json()["message"]
    public = member.post("/v2/images", json={"name": "ns-public", "visibility": "public"},
                         endpoint_filter=IMAGE, raise_exc=False)
    assert public.status_code == 403
    default = member.get("/v2/images?name=cirros-0.6.2-x86_64-disk", endpoint_filter=IMAGE).json()
    not_mine = member.delete(f"/v2/images/{default['images'][0]['id']}", endpoint_filter=IMAGE,
                             raise_exc=False)
    assert not_mine.status_code == 403
    unauthenticated = requests.get(f"{cloud.base_url}/image/v2/images", timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["title"] == "Unauthorized"
    assert unauthenticated.headers["x-openstack-request-id"].startswith("req-")


def test_schemas(member):
    schema = member.get("/v2/schemas/image", endpoint_filter=IMAGE).json()
    assert schema["name"] == "image" and "status" in schema["properties"]
    assert member.get("/v2/schemas/images", endpoint_filter=IMAGE).json()["name"] == "images"


def test_openstacksdk_lists_and_uploads(cloud):
    conn = openstack.connection.Connection(auth=cloud.credentials(), region_name="RegionOne")
    assert "cirros-0.6.2-x86_64-disk" in [image.name for image in conn.image.images()]
    image = conn.image.create_image(name="ns-sdk-image", data=b"x" * 512, disk_format="raw",
                                    container_format="bare")
    try:
        assert conn.image.get_image(image.id).status == "active"
    finally:
        conn.image.delete_image(image)
    assert conn.image.find_image("ns-sdk-image") is None
