"""Settings of one embedded cloud."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

# what --services may leave out of the catalog; identity is always there
SERVICES = ("compute", "image", "volume", "network", "placement")
# (id, name, ram MB, vcpus, disk GB), smallest first: --flavors N offers the first N (more are made up)
FLAVORS = (("42", "m1.nano", 64, 1, 1), ("84", "m1.micro", 128, 1, 1), ("1", "m1.tiny", 512, 1, 1),
           ("2", "m1.small", 2048, 1, 20), ("3", "m1.medium", 4096, 2, 40), ("4", "m1.large", 8192, 4, 80),
           ("5", "m1.xlarge", 16384, 8, 160))
DEFAULT_FLAVORS = 4


def flavor_table(count: int) -> list[tuple[str, str, int, int, int]]:
    """The first `count` flavors of FLAVORS, then bigger ones named m1.x8, m1.x9…

        flavor_table(1)   # [("42", "m1.nano", 64, 1, 1)]
    """
    offered = list(FLAVORS[:count])
    for number in range(len(FLAVORS) + 1, count + 1):
        offered.append((str(100 + number), f"m1.x{number}", 1024 * number, number, 10 * number))
    return offered


def parse_services(text: str) -> tuple[str, ...]:
    """`compute,image,network` -> those names in catalog order; `all` -> every service.

        parse_services("network,compute")   # ("compute", "network")
    """
    if text.strip().lower() == "all":
        return SERVICES
    names = {name.strip().lower() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(SERVICES) - {"identity"})
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown service {', '.join(unknown)}: use all or a comma "
                                         f"list of {', '.join(SERVICES)} (identity is always there)")
    return tuple(name for name in SERVICES if name in names)


# the newest compute microversion of Nova 34 (2.104): the embedded cloud's default ceiling
NOVA_MAX_MINOR = 104


@dataclass
class Delays:
    """Seconds each asynchronous transition takes: a random value in [low, high]."""

    build: tuple[float, float] = (0.5, 1.5)
    delete: tuple[float, float] = (0.2, 0.6)
    action: tuple[float, float] = (0.2, 0.8)
    volume: tuple[float, float] = (0.2, 0.6)
    network: tuple[float, float] = (0.05, 0.2)
    # nova.conf rpc_response_timeout (60 s in Nova), shortened: an RPC lost with a dying conductor
    rpc_timeout: tuple[float, float] = (6.0, 6.0)

    @classmethod
    def scaled(cls, factor: float) -> "Delays":
        """Every delay multiplied by factor (0 makes every transition immediate)."""
        base = cls()
        return cls(**{name: (low * factor, high * factor)
                      for name, (low, high) in vars(base).items()})


@dataclass
class CloudConfig:
    host: str = "127.0.0.1"
    port: int = 0
    # the host name clients use in URLs (catalog, links) when it differs from the
    # listening address, e.g. a container name while listening on 0.0.0.0
    public_host: str | None = None
    log_dir: str = "novastress-logs"
    compute_hosts: int = 3
    seed: int | None = None
    # fault ids to arm, "all" or "none"; probabilities override the catalogue's defaults
    faults: list[str] | str = "all"
    fault_probability: dict[str, float] = field(default_factory=dict)
    delays: Delays = field(default_factory=Delays)
    token_ttl: float = 3600.0
    region: str = "RegionOne"
    member_password: str | None = None
    admin_password: str | None = None
    # per-project quotas: generous so that stress runs and benchmarks (10,000 live servers)
    # fit; tests lower them through the quota API (Nova's own defaults are 10 instances)
    quota_instances: int = 20000
    quota_cores: int = 100000
    quota_ram: int = 51200000
    quota_volumes: int = 20000
    quota_floating_ips: int = 20000
    host_capacity_vcpus: int = 100000
    host_capacity_ram_mb: int = 102400000
    # port the simulated guests answer SSH on at their floating IPs; None: 22 when it can be
    # bound (root), else a free port (reported by GET /fakecloud as guest_ssh_port)
    guest_ssh_port: int | None = None
    # the external network's subnet (floating IPs, loopback so guests can listen on them); None:
    # a random 127.X.0.0/16, X in 100-199, so that clouds on one machine do not share addresses
    public_cidr: str | None = None
    # the services in the Keystone catalog besides identity; one left out answers 404, as a
    # cloud without it would (the others still use it inside: Nova boots from its images)
    services: tuple[str, ...] = SERVICES
    # flavors offered (FLAVORS); one flavor is a cloud where nothing can be resized
    flavors: int = DEFAULT_FLAVORS
    # the external network "public" (floating IPs come from it) and the router to it; without it
    # the cloud has only its private network, as many real ones do
    external_network: bool = True
    # the shared tenant network "private" servers get a port on when they ask for no network;
    # without it (the real minimal stack) such a boot gives a server with no addresses and
    # networks "auto" fails; "public" and its router may still exist, with no subnet behind them
    tenant_network: bool = True
    # False: snapshot images stay queued, the upload never comes (Nova's fake virt driver)
    snapshots_finish: bool = True
    # the newest compute microversion (2.N) it serves, as an older Nova's ceiling: its version
    # document says so, "latest" means it, a request above it is a 406
    max_microversion_minor: int = NOVA_MAX_MINOR
