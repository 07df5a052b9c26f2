"""Tests Tempest's gate ran as stress actions, redone over NovaUser (see unit_test.TEMPEST_TESTS).

    {"action": "tempest.stress.actions.unit_test.UnitTest", "required_services": ["neutron"],
     "kwargs": {"test_method": "tempest.scenario.test_network_advanced_server_ops."
                               "TestNetworkAdvancedServerOps.test_server_connectivity_stop_start"}}
"""
from __future__ import annotations

import unittest

from ..cloudprofile import Needs
from ..discovery import stresstest
from .floating import guest_port, guest_ports, tcp_open, until
from .unit_test import current_user


class TestNetworkAdvancedServerOps(unittest.TestCase):
    """A server behind a floating IP stays reachable across its lifecycle operations."""

    def _reachable(self, address: str) -> None:
        user = current_user()
        port = guest_port(user)
        with user.atomic("check_port_ssh"):
            until(f"cannot connect to the SSH port {address}:{port}", lambda: tcp_open(address, port, 5.0),
                  user.options.build_timeout, user.options.status_poll_interval)

    @stresstest(class_setup_per="process", types=("network", "smoke"),
                needs=Needs(services=("compute", "network"), floating_ip=True))
    def test_server_connectivity_stop_start(self) -> None:
        user = current_user()
        group = user.create_security_group(guest_ports(user))
        keypair = user.create_keypair()
        server = user.boot_server(security_groups=[{"name": group["name"]}], key_name=keypair["name"])
        fip = user.allocate_floating_ip()
        user.associate_floating_ip(fip, server)
        address = fip["floating_ip_address"]
        self._reachable(address)
        server = user.server_action(server, {"os-stop": None}, "SHUTOFF", atomic="stop_server")
        server = user.server_action(server, {"os-start": None}, "ACTIVE", atomic="start_server")
        self._reachable(address)
        user.release_floating_ip(fip)
        user.delete_server(server)
        user.delete_security_group(group)
        user.delete_keypair(keypair)
