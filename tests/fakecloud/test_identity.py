"""Keystone v3 of the embedded cloud, checked against the recorded real responses."""
from __future__ import annotations

import requests
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
import pytest


def test_password_auth_returns_token_and_catalog(cloud):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"id": "default"}, "password": cloud.info["member"]["password"]}}},
        "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}}}
    response = requests.post(f"{cloud.auth_url}/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 201
    assert response.headers["X-Subject-Token"]
    assert response.headers["x-openstack-request-id"].startswith("req-")
    token = response.json()["token"]
    assert token["project"]["name"] == "demo"
    assert {role["name"] for role in token["roles"]} == {"member", "reader"}
    types = {entry["type"] for entry in token["catalog"]}
    assert {"identity", "compute", "image", "volumev3", "network", "placement"} <= types


def test_wrong_password_is_401_with_keystone_body(cloud):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "demo", "domain": {"id": "default"}, "password": "wrong"}}}}}
    response = requests.post(f"{cloud.auth_url}/v3/auth/tokens", json=body, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": {"code": 401, "message": "The request you have made requires "
                                         "authentication.", "title": "Unauthorized"}}
    assert response.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_keystoneauth_bad_password_raises_unauthorized(cloud):
    credentials = dict(cloud.credentials(), password="not-the-password")
    session = ks_session.Session(auth=v3.Password(**credentials))
    with pytest.raises(ks_exceptions.Unauthorized):
        session.get_token()


def test_admin_creates_and_deletes_project_user_and_role(admin, cloud):
    identity = {"service_type": "identity", "interface": "public"}
    project = admin.post("/v3/projects", json={"project": {"name": "ns-test-proj"}},
                         endpoint_filter=identity).json()["project"]
    user = admin.post("/v3/users", json={"user": {"name": "ns-test-user", "password": "pw-123456",
                                                  "default_project_id": project["id"]}},
                      endpoint_filter=identity).json()["user"]
    member_role = admin.get("/v3/roles?name=member", endpoint_filter=identity).json()["roles"][0]
    admin.put(f"/v3/projects/{project['id']}/users/{user['id']}/roles/{member_role['id']}",
              endpoint_filter=identity)
    session = ks_session.Session(auth=v3.Password(
        auth_url=cloud.auth_url, username="ns-test-user", password="pw-123456",
        project_name="ns-test-proj", user_domain_name="Default", project_domain_name="Default"))
    assert session.get_project_id() == project["id"]
    assert admin.delete(f"/v3/users/{user['id']}", endpoint_filter=identity).status_code == 204
    assert admin.delete(f"/v3/projects/{project['id']}", endpoint_filter=identity).status_code == 204


def test_member_cannot_list_projects(member):
    response = member.get("/v3/projects", endpoint_filter={"service_type": "identity"}, raise_exc=False)
    assert response.status_code == 403


def test_missing_token_is_401_on_services(cloud):
    response = requests.get(f"{cloud.base_url}/compute/v2.1/servers", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == 401


def test_a_service_left_out_is_absent_from_the_catalog_and_its_paths(cloud_factory):
    cloud = cloud_factory(faults="none", delay_scale=0.1, services="compute,image,network")
    session = cloud.session()
    catalog = session.auth.get_access(session).service_catalog
    assert {entry["type"] for entry in catalog.catalog} == {"identity", "compute", "image", "network"}
    with pytest.raises(ks_exceptions.EndpointNotFound):
        session.get_endpoint(service_type="block-storage", interface="public")
    token = session.get_token()
    for path in ("/volume/v3/volumes", "/placement/resource_providers"):
        assert requests.get(f"{cloud.base_url}{path}", headers={"X-Auth-Token": token},
                            timeout=10).status_code == 404
    # the services that stay work, and identity lists only them
    assert session.get(f"{cloud.base_url}/compute/v2.1/flavors").status_code == 200
    admin = cloud.session(admin=True)
    listed = admin.get(f"{cloud.auth_url}/v3/services").json()["services"]
    assert {service["type"] for service in listed} == {"identity", "compute", "image", "network"}
