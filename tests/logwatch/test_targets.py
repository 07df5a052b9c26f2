"""Host lists, host maps, nova-manage output and os-services discovery."""
from __future__ import annotations

import pytest

from logwatch import (Target, TargetError, discover_os_services, parse_address, parse_host_map,
                      parse_hosts, parse_service_list, resolve)


def test_hosts_with_and_without_ports():
    assert parse_hosts("ctl, 10.0.0.7:2222 [::1]:2200") == [
        Target("ctl", "ctl", None), Target("10.0.0.7:2222", "10.0.0.7", 2222), Target("[::1]:2200", "::1", 2200)]
    assert parse_address("fe80::1") == ("fe80::1", None)
    with pytest.raises(TargetError, match="--log-hosts"):
        parse_address("host:99999")


def test_host_map_and_resolve():
    mapping = parse_host_map("compute-1=10.0.0.11:2222, compute-2=10.0.0.12")
    assert mapping == {"compute-1": ("10.0.0.11", 2222), "compute-2": ("10.0.0.12", None)}
    targets = resolve(["ctl", "compute-1", "compute-2", "compute-1"], mapping)
    assert targets == [Target("ctl", "ctl"), Target("compute-1", "10.0.0.11", 2222),
                       Target("compute-2", "10.0.0.12")]
    with pytest.raises(TargetError, match="name=host"):
        parse_host_map("compute-1")


OLD_NOVA_MANAGE = """\
DEPRECATED: nova-manage service list is deprecated
Binary           Host                                 Zone             Status     State Updated_At
nova-conductor   ctl                                  internal         enabled    :-)   2013-07-01 10:00:00
nova-compute     compute-1                            nova             enabled    :-)   2013-07-01 10:00:01
nova-compute     compute-2                            nova             disabled   XXX   2013-07-01 09:00:00
nova-scheduler   ctl                                  internal         enabled    :-)   None
"""

TABLE_NOVA_MANAGE = """\
+----+----------------+-----------+----------+---------+-------+----------------------------+
| Id | Binary         | Host      | Zone     | Status  | State | Updated At                 |
+----+----------------+-----------+----------+---------+-------+----------------------------+
| 1  | nova-scheduler | ctl       | internal | enabled | up    | 2026-11-28T05:15:13.000000 |
| 7  | nova-compute   | compute-1 | nova     | enabled | up    | 2026-11-28T05:15:13.000000 |
| 9  | nova-compute   | compute-3 | nova     | enabled | down  | -                          |
+----+----------------+-----------+----------+---------+-------+----------------------------+
"""


def test_nova_manage_output_parsed_robustly():
    assert parse_service_list(OLD_NOVA_MANAGE) == ["compute-1", "compute-2"]
    assert parse_service_list(TABLE_NOVA_MANAGE) == ["compute-1", "compute-3"]
    assert parse_service_list("nova-compute compute-9 nova enabled :-) x\n") == ["compute-9"]
    assert parse_service_list("") == []
    assert parse_service_list("Traceback (most recent call last):\nOSError: boom\n") == []


def test_os_services_discovery_on_the_embedded_cloud(admin, member):
    """Real Compute API: admin lists the compute hosts; a member gets one clear line."""
    from keystoneauth1 import adapter
    probe = adapter.Adapter(admin, service_type="compute").get("/os-services", raise_exc=False)
    assert probe.status_code == 200, probe.text
    hosts = discover_os_services(admin)
    assert hosts and all(isinstance(h, str) for h in hosts)
    assert len(hosts) == len(set(hosts))
    mapping = {hosts[0]: ("127.0.0.1", 2222)}
    targets = resolve(hosts, mapping)
    assert targets[0] == Target(hosts[0], "127.0.0.1", 2222)
    with pytest.raises(TargetError, match="admin"):
        discover_os_services(member)
