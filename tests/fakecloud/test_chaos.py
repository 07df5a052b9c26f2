"""HTTP-level fault injection of the embedded cloud: 5xx, slow answers, resets."""
from __future__ import annotations

import pytest
import requests

CONTROL = "/fakecloud/chaos"


@pytest.fixture
def chaos(cloud, admin):
    def add(**rule) -> dict:
        response = requests.post(cloud.base_url + CONTROL, json={"rule": rule},
                                 headers={"X-Auth-Token": admin.get_token()}, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["rule"]
    yield add
    requests.delete(cloud.base_url + CONTROL, headers={"X-Auth-Token": admin.get_token()}, timeout=10)


def catalog(cloud, member, timeout: float = 10):
    return requests.get(cloud.auth_url + "/v3/auth/catalog",
                        headers={"X-Auth-Token": member.get_token()}, timeout=timeout)


def test_status_rule_answers_5xx_for_its_count_then_recovers(cloud, member, chaos):
    chaos(service="identity", method="GET", path="/auth/catalog", kind="status", status=503, count=2)
    assert [catalog(cloud, member).status_code for _ in range(3)] == [503, 503, 200]
    log = open(f"{cloud.log_dir}/keystone.log").read()
    assert "Unexpected exception in API method: injected fault" in log


def test_delay_rule_exceeds_a_short_client_timeout(cloud, member, chaos):
    chaos(service="identity", path="/auth/catalog", kind="delay", delay=1.0, count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        catalog(cloud, member, timeout=0.3)
    assert catalog(cloud, member).status_code == 200


def test_reset_rule_drops_the_connection(cloud, member, chaos):
    chaos(service="identity", path="/auth/catalog", kind="reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        catalog(cloud, member)
    assert catalog(cloud, member).status_code == 200


def test_bad_rule_is_400_and_member_is_403(cloud, member, admin):
    bad = requests.post(cloud.base_url + CONTROL, json={"rule": {"kind": "explode"}},
                        headers={"X-Auth-Token": admin.get_token()}, timeout=10)
    assert bad.status_code == 400
    assert "unknown chaos kind" in bad.text
    forbidden = requests.get(cloud.base_url + CONTROL, headers={"X-Auth-Token": member.get_token()},
                             timeout=10)
    assert forbidden.status_code == 403


def test_expired_tokens_get_401_and_keystoneauth_reauthenticates(cloud_factory):
    embedded = cloud_factory(faults="none", delay_scale=0.0)
    member = embedded.session()
    admin = embedded.session(admin=True)
    old = member.get_token()
    expired = requests.post(embedded.base_url + "/fakecloud/expire-tokens",
                            headers={"X-Auth-Token": admin.get_token()}, timeout=10)
    assert expired.json()["expired"] >= 2
    assert catalog(embedded, member).status_code == 401
    # keystoneauth re-authenticates on 401 once the plugin is invalidated
    member.invalidate()
    assert member.get_token() != old
    assert catalog(embedded, member).status_code == 200
