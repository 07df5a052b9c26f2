"""`novastress-fakecloud`: run the embedded cloud in the foreground until SIGINT/SIGTERM."""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
from pathlib import Path

from .config import DEFAULT_FLAVORS, NOVA_MAX_MINOR, SERVICES, CloudConfig, Delays, parse_services
from .faults import CATALOGUE

DELAY_KINDS = tuple(vars(Delays()))


def _delay(value: str) -> tuple[str, tuple[float, float]]:
    kind, _, span = value.partition("=")
    low, _, high = span.partition(":")
    if kind not in DELAY_KINDS:
        raise argparse.ArgumentTypeError(f"unknown delay {kind!r}; use one of {', '.join(DELAY_KINDS)}")
    try:
        return kind, (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--delay {value!r}: use KIND=LOW:HIGH seconds, e.g. build=0.5:1.5") from None


def _probability(value: str) -> tuple[str, float]:
    fault, _, chance = value.partition("=")
    if fault not in CATALOGUE:
        raise argparse.ArgumentTypeError(f"unknown fault {fault!r}; known: {', '.join(sorted(CATALOGUE))}")
    try:
        return fault, float(chance)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fault-probability {value!r}: use FAULT=0..1") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novastress-fakecloud",
        description="Run the embedded OpenStack cloud (Keystone, Nova, Glance, Cinder, Neutron, "
                    "Placement) on loopback.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    parser.add_argument("--public-host", help="host name clients use in URLs when it is not --host "
                                              "(e.g. a container name while listening on 0.0.0.0)")
    parser.add_argument("--log-dir", default="novastress-logs", help="directory of the Nova-style logs")
    parser.add_argument("--compute-hosts", type=int, default=3, help="simulated compute hosts (default 3)")
    parser.add_argument("--flavors", type=_at_least_one, default=DEFAULT_FLAVORS, metavar="N",
                        help=f"flavors offered, smallest first (default {DEFAULT_FLAVORS}; 1: nothing can be resized)")
    parser.add_argument("--no-external-network", dest="external_network", action="store_false",
                        help="no external network, router or floating IPs (only the private network)")
    parser.add_argument("--no-tenant-network", dest="tenant_network", action="store_false",
                        help="no private network, subnet or router interface, as the real minimal "
                             "stack: a boot without networks (or networks none) gives a server with "
                             "no addresses, networks auto is refused; the external network stays "
                             "unless --no-external-network, but a floating IP has no port to go to")
    parser.add_argument("--snapshots-never-finish", dest="snapshots_finish", action="store_false",
                        help="a server snapshot's image stays queued for ever, as with Nova's fake virt "
                             "driver (the server's task state clears as if it had uploaded)")
    parser.add_argument("--max-microversion", type=_microversion, default=NOVA_MAX_MINOR, metavar="2.N",
                        help=f"the newest compute microversion served, as an older Nova's (default 2.{NOVA_MAX_MINOR})")
    parser.add_argument("--seed", type=int, default=None, help="seed: same seed, same fault decisions")
    parser.add_argument("--faults", default="all",
                        help=f"planted race bugs to arm: all, none or a comma list of "
                             f"{', '.join(sorted(CATALOGUE))}")
    parser.add_argument("--fault-probability", type=_probability, action="append", default=[],
                        metavar="FAULT=P", help="override one fault's probability (repeatable)")
    parser.add_argument("--delay-scale", type=float, default=1.0,
                        help="multiply every state-transition delay (0 = immediate)")
    parser.add_argument("--delay", type=_delay, action="append", default=[], metavar="KIND=LOW:HIGH",
                        help=f"one transition's delay range in seconds; KIND is one of {', '.join(DELAY_KINDS)}")
    parser.add_argument("--token-ttl", type=float, default=3600.0, help="token lifetime in seconds")
    parser.add_argument("--guest-ssh-port", type=int, default=None, metavar="PORT",
                        help="port ACTIVE servers answer SSH on at their floating IPs (default 22; "
                             "when 22 cannot be bound, e.g. not root, a free port, shown in "
                             "GET /fakecloud as guest_ssh_port)")
    parser.add_argument("--public-cidr", type=_loopback_cidr, default=None, metavar="CIDR",
                        help="floating-IP subnet, inside 127.0.0.0/8 (default: a random 127.X.0.0/16)")
    parser.add_argument("--services", type=parse_services, default=SERVICES, metavar="NAME,...",
                        help=f"services in the Keystone catalog besides identity: all (default) or a "
                             f"comma list of {', '.join(SERVICES)}; one left out answers 404")
    parser.add_argument("--clouds-yaml", type=Path, help="write clouds 'embedded' and 'embedded-admin' here")
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--member-password", help=argparse.SUPPRESS)
    parser.add_argument("--admin-password", help=argparse.SUPPRESS)
    return parser


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return value


def _microversion(text: str) -> int:
    """`2.N`, N from 1 to Nova 34's newest: the minor number."""
    major, _, minor = text.partition(".")
    if major != "2" or not minor.isdigit() or not 1 <= int(minor) <= NOVA_MAX_MINOR:
        raise argparse.ArgumentTypeError(f"{text!r}: give a compute microversion from 2.1 to 2.{NOVA_MAX_MINOR}")
    return int(minor)


def _loopback_cidr(text: str) -> str:
    """A subnet inside 127.0.0.0/8 with room for floating IPs: guests listen on its addresses."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a subnet ({exc})") from None
    if not network.subnet_of(ipaddress.ip_network("127.0.0.0/8")) or network.prefixlen > 28:  # type: ignore[arg-type]
        raise argparse.ArgumentTypeError(f"{text!r}: use a loopback subnet of at least 16 addresses, "
                                         "e.g. 127.150.0.0/16")
    return str(network)


def config_from_args(args: argparse.Namespace) -> CloudConfig:
    delays = Delays.scaled(args.delay_scale)
    for kind, span in args.delay:
        setattr(delays, kind, span)
    return CloudConfig(host=args.host, port=args.port, public_host=args.public_host, log_dir=args.log_dir,
                       compute_hosts=max(1, args.compute_hosts), seed=args.seed, faults=args.faults,
                       fault_probability=dict(args.fault_probability), delays=delays,
                       token_ttl=args.token_ttl, member_password=args.member_password,
                       admin_password=args.admin_password, guest_ssh_port=args.guest_ssh_port,
                       public_cidr=args.public_cidr, services=args.services, flavors=args.flavors,
                       external_network=args.external_network, tenant_network=args.tenant_network,
                       snapshots_finish=args.snapshots_finish,
                       max_microversion_minor=args.max_microversion)


def clouds_document(cloud) -> dict:
    def entry(user: str, password: str, project: str) -> dict:
        return {"auth": {"auth_url": cloud.auth_url, "username": user, "password": password,
                         "project_name": project, "user_domain_name": "Default",
                         "project_domain_name": "Default"},
                "region_name": cloud.config.region, "interface": "public",
                "identity_api_version": 3}
    return {"clouds": {"embedded": entry("demo", cloud.member_password, "demo"),
                       "embedded-admin": entry("admin", cloud.admin_password, "admin")}}


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: it holds passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey
    monkey.patch_all()
    import gevent
    import yaml

    from .app import Cloud

    args = build_parser().parse_args(argv)
    try:
        cloud = Cloud(config_from_args(args))
        server = cloud.bind()
    except (OSError, ValueError) as exc:
        print(f"novastress-fakecloud: cannot start: {exc}", file=sys.stderr)
        return 2
    server.start()
    # handlers first: a supervisor may signal as soon as it sees the banner
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    info = {"auth_url": cloud.auth_url, "base_url": cloud.base_url,
            "log_dir": str(Path(cloud.config.log_dir).resolve()), "pid": os.getpid(),
            "guest_ssh_port": cloud.guests.port, "public_cidr": cloud.network.public_cidr,
            "member": {"username": "demo", "password": cloud.member_password, "project_name": "demo"},
            "admin": {"username": "admin", "password": cloud.admin_password, "project_name": "admin"}}
    if args.clouds_yaml:
        write_private(args.clouds_yaml, yaml.safe_dump(clouds_document(cloud), sort_keys=False))
    if args.ready_file:
        write_private(args.ready_file, json.dumps(info))
    else:
        print(f"Embedded cloud listening: auth URL {cloud.auth_url}", flush=True)
        print(f"  member: user demo / project demo / password {cloud.member_password}", flush=True)
        print(f"  admin:  user admin / project admin / password {cloud.admin_password}", flush=True)
        print(f"  logs:   {info['log_dir']}", flush=True)
        print(f"  guests: SSH on <floating ip>:{cloud.guests.port} (user cirros)"
              + (f" - {cloud.guests.note}" if cloud.guests.note else ""), flush=True)
        if args.clouds_yaml:
            print(f"  clouds.yaml: {args.clouds_yaml} (OS_CLOUD=embedded or embedded-admin)", flush=True)
    stop.wait()
    cloud.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
