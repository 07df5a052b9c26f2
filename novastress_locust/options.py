"""Every novastress option: name, default, help.

Options added here appear in `locust --help`, in `locust.conf` (`os-cloud = mycloud`), in
the web UI and in `environment.parsed_options`. Tempest's `[stress]` option names are
kept where they apply (`--leave-dirty-stack`, `--full-clean-stack`,
`--default-thread-number-per-action`); a `tempest.conf` given with `--tempest-conf`
fills any option still at its default from its `[stress]` section.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from . import faultspec, sla


@dataclass(frozen=True)
class Option:
    flag: str
    default: Any
    help: str
    type: Any = None
    secret: bool = False
    choices: tuple[str, ...] | None = None
    # store_true flags have no type and no value
    switch: bool = False
    extra: dict = field(default_factory=dict)
    web_ui: bool = True    # shown in the web UI's start form

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


# identical failures in a row after which an action backs off (--backoff-cap)
BACKOFF_AFTER = 3


def _positive(kind, zero: bool = False):
    def convert(text: str):
        value = kind(text)
        if value < 0 or value == 0 and not zero:
            raise argparse.ArgumentTypeError(f"must be {'zero or more' if zero else 'greater than zero'}, got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


def _services(text: str) -> str:
    """`--embedded-services`: checked here, so a wrong name is an argument error, not a cloud
    that does not start."""
    from .fakecloud.config import parse_services
    return text if text.strip().lower() == "all" else ",".join(parse_services(text))


def _microversion(text: str) -> str:
    """`--embedded-max-microversion 2.N`, N within what Nova 34 knows ('' for its newest)."""
    from .fakecloud.config import NOVA_MAX_MINOR
    major, _, minor = text.partition(".")
    if text and (major != "2" or not minor.isdigit() or not 1 <= int(minor) <= NOVA_MAX_MINOR):
        raise argparse.ArgumentTypeError(f"give a compute microversion from 2.1 to 2.{NOVA_MAX_MINOR}, got {text}")
    return text


def _checked(parse: Callable[[str], Any]):
    """`--sla`, `--fault`: checked here by `parse` (one clear line, exit 2), kept as text (workers get it as it is)."""
    def check(text: str) -> str:
        try:
            parse(text)
        except faultspec.FaultError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--fault {text!r}: ")) from None
        return text
    return check


CLOUD = "OpenStack cloud (precedence: these options > clouds.yaml > OS_* environment > --tempest-conf)"
CLOUD_OPTIONS: tuple[Option, ...] = (
    Option("--os-cloud", None, "cloud name in clouds.yaml (standard search paths; also OS_CLOUD)"),
    Option("--os-auth-url", None, "Keystone URL, e.g. https://keystone.example.com/v3"),
    Option("--os-auth-type", None, "any keystoneauth auth type: password (default), "
           "v3applicationcredential, token, v3oidcpassword..."),
    Option("--os-username", None, "user name"),
    Option("--os-user-id", None, "user id"),
    Option("--os-password", None, "password", secret=True),
    Option("--os-project-name", None, "project name"),
    Option("--os-project-id", None, "project id"),
    Option("--os-user-domain-name", None, "user domain name (default Default)"),
    Option("--os-user-domain-id", None, "user domain id"),
    Option("--os-project-domain-name", None, "project domain name (default Default)"),
    Option("--os-project-domain-id", None, "project domain id"),
    Option("--os-application-credential-id", None, "application credential id"),
    Option("--os-application-credential-name", None, "application credential name"),
    Option("--os-application-credential-secret", None, "application credential secret", secret=True),
    Option("--os-token", None, "an existing token (auth type token)", secret=True),
    Option("--os-auth-option", [], "any other option of the auth type, KEY=VALUE (repeatable)",
           extra={"action": "append"}),
    Option("--os-region-name", None, "region of the endpoints to use"),
    Option("--os-interface", None, "endpoint interface: public (default), internal or admin",
           choices=("public", "internal", "admin")),
    Option("--os-cacert", None, "CA bundle to verify TLS certificates"),
    Option("--insecure", False, "do not verify TLS certificates", switch=True),
    Option("--tempest-conf", None, "a tempest.conf: its identity/auth admin credentials, "
           "compute image_ref/flavor_ref and [stress] section"),
)

TARGET = "What to boot"
TARGET_OPTIONS: tuple[Option, ...] = (
    Option("--image", None, "image name or id (default: the first active image)"),
    Option("--flavor", None, "flavor name or id (default: the smallest flavor)"),
    Option("--network", None, "network name or id (default: the project's only network, "
           "or no network when it has none)"),
    Option("--compute-microversion", "2.37", "compute API microversion sent on every call "
           "(2.37 or later allows booting with no network)"),
)

RUN = "novastress run control"
RUN_OPTIONS: tuple[Option, ...] = (
    Option("--prefix", "ns", "name prefix of every resource: <prefix>-<run id>-..."),
    Option("--run-id", None, "run id in resource names (default: generated, printed at start)"),
    Option("--max-runs", 0, "at most N actions per user, then the user is done; the test ends "
           "when every user is done (0 = no limit; Tempest's -n)", type=int),
    Option("--stop-on-error", False, "end the whole run at the first failed action or logged "
           "error (Tempest's -S)", switch=True),
    Option("--build-timeout", 300.0, "seconds a server may take to become ACTIVE", type=_positive(float)),
    Option("--delete-timeout", 120.0, "seconds a server may take to disappear after DELETE", type=_positive(float)),
    Option("--status-poll-interval", 1.0, "seconds between status polls", type=_positive(float)),
    Option("--snapshot-timeout", 60.0, "seconds a server snapshot's image may stay queued or saving before it is "
           "deleted as it is (some clouds, e.g. Nova's fake driver, never upload one)", type=_positive(float)),
    Option("--cleanup-timeout", 30.0, "once the run stops (end of -t, Ctrl-C, SIGTERM), every wait of a "
           "user's cleanup ends by this many seconds after the stop; what is still there then is left "
           "to the final sweep and named", type=_positive(float)),
    Option("--request-timeout", 60.0, "seconds one API call may take before it counts as failed "
           "(a hung cloud must not hang the users)", type=_positive(float)),
    Option("--waiter", "batched", "batched: one changes-since list per interval serves every waiting user of a "
           "credential; per-server: one GET per waiting server", choices=("batched", "per-server")),
    Option("--transport", "fast", "HTTP under keystoneauth: fast (geventhttpclient's pooled "
           "connections, about a third of requests' CPU per call) or requests (plain requests; "
           "also used whenever a proxy from the environment applies)", choices=("requests", "fast")),
    Option("--default-thread-number-per-action", 0, "users per action when -u is not given "
           "(Tempest [stress] name; 0 = the locustfile's own default)", type=int),
    Option("--leave-dirty-stack", False, "do not delete what the run created (Tempest [stress] "
           "name); every resource is still named <prefix>-<run id>-...", switch=True),
    Option("--full-clean-stack", False, "after the run, also delete everything named "
           "<prefix>-* left by earlier runs in this credential's project (Tempest [stress] name)", switch=True),
    Option("--backoff-cap", 30.0, f"an action that failed the same way {BACKOFF_AFTER} times in a row waits "
           "1 s before its next run, twice as long after each further such failure, at most this many "
           "seconds; a success ends it (per user; 0 = never wait)", type=float),
    Option("--server-timings", False, "after each server action, read Nova's own events of its request (instance "
           "actions: scheduling, building, rebooting... to the microsecond) and report each as a NOVA row '<event> on "
           "<host>': where the time went, per host; one more GET per server action", switch=True),
    Option("--summary-max-users", 50, "past this many per-user lines the end-of-run statistics are grouped per "
           "worker and user class (min / median / max runs, the users that failed); --summary-json keeps every "
           "user; 0: never group", type=int),
)

EMBEDDED = "Embedded cloud (used when no cloud is configured)"
EMBEDDED_OPTIONS: tuple[Option, ...] = (
    Option("--embedded-log-dir", "novastress-logs", "directory of the embedded cloud's Nova-style logs"),
    Option("--embedded-delay-scale", float(os.environ.get("NOVASTRESS_DELAY_SCALE", "1.0")),
           "multiply the embedded cloud's state-transition delays (env NOVASTRESS_DELAY_SCALE)", type=float),
    Option("--embedded-faults", os.environ.get("NOVASTRESS_FAULTS", "all"),
           "planted race bugs of the embedded cloud: all, none or a comma list (env NOVASTRESS_FAULTS)"),
    Option("--embedded-seed", None, "seed of the embedded cloud's dice", type=int),
    Option("--embedded-services", "all", "services in the embedded cloud's catalog besides identity: "
           "all or a comma list of compute, image, volume, network, placement (a cloud without "
           "Cinder: compute,image,network,placement)", type=_services),
    Option("--embedded-compute-hosts", 3, "simulated compute hosts of the embedded cloud", type=_positive(int)),
    Option("--embedded-flavors", 4, "flavors the embedded cloud offers (1: nothing can be resized)",
           type=_positive(int)),
    Option("--embedded-no-external-network", False, "the embedded cloud has no external network, "
           "router or floating IPs", switch=True),
    Option("--embedded-no-tenant-network", False, "the embedded cloud has no tenant network: servers "
           "boot without addresses, as on a cloud whose projects have no network of their own", switch=True),
    Option("--embedded-snapshots-never-finish", False, "the embedded cloud's server snapshots stay "
           "queued for ever, as with Nova's fake virt driver", switch=True),
    Option("--embedded-max-microversion", "", "the newest compute microversion the embedded cloud "
           "serves, as an older Nova's (e.g. 2.60; default: Nova 34's 2.104)", type=_microversion),
    Option("--embedded-clouds-yaml", os.environ.get("NOVASTRESS_EMBEDDED_CLOUDS_YAML"),
           "write clouds 'embedded' and 'embedded-admin' of the embedded cloud to this file, to "
           "look at it with the openstack CLI (env NOVASTRESS_EMBEDDED_CLOUDS_YAML)"),
    Option("--embedded-keep", os.environ.get("NOVASTRESS_EMBEDDED_KEEP", "") not in ("", "0"),
           "leave the embedded cloud running after Locust exits, to inspect it; its pid is "
           "logged (env NOVASTRESS_EMBEDDED_KEEP=1)", switch=True),
)

SCENARIO = "Scenarios, discovery and actions (Tempest's -t/-a/-T/-i/-s)"
SCENARIO_OPTIONS: tuple[Option, ...] = (
    Option("--scenario", None, "a scenario file: Tempest's JSON unchanged, or YAML (locustfiles/scenario.py)"),
    Option("--serial", False, "run the scenario's entries one after another, the run time split "
           "evenly (Tempest's -s)", switch=True),
    Option("--stress-type", None, "with locustfiles/all.py: only tests that also carry this type "
           "attribute (Tempest's -T)"),
    Option("--call-inherited", False, "with locustfiles/all.py: also run @stresstest methods a test "
           "class inherits (Tempest's -i)", switch=True),
    Option("--stress-module", [], "with locustfiles/all.py: also discover @stresstest actions and "
           "tests in this module or .py file (repeatable)", extra={"action": "append"}),
    Option("--guest-ssh-port", None, "SSH port of the guests behind floating IPs (default 22; "
           "the embedded cloud's own guest port when it was started by this run)", type=int),
    Option("--guest-ssh-user", "cirros", "user name on the guests (Tempest's image_ssh_user)"),
    Option("--os-admin-username", None, "admin user for use_admin / use_isolated_tenants "
           "(same auth URL and domains; default: the run's own credentials)"),
    Option("--os-admin-password", None, "password of --os-admin-username", secret=True),
    Option("--os-admin-project-name", None, "project of --os-admin-username (default admin)"),
)

STORM = "Contention storms and invariant checks (locustfiles/storm.py, the storm action)"
STORM_OPTIONS: tuple[Option, ...] = (
    Option("--storm-pool-size", 6, "servers each process shares between its storm users", type=_positive(int)),
    Option("--storm-actions", "all", "lifecycle actions fired at pool members: all or a comma list of soft_reboot, "
           "hard_reboot, stop, start, pause, unpause, suspend, resume, lock (then unlock), shelve, unshelve, rebuild, "
           "resize, confirm_resize, revert_resize, snapshot (createImage), attach_volume, associate_floating_ip"),
    Option("--storm-delete-ratio", 0.25, "fraction of accepted actions raced by a DELETE of the same server",
           type=float),
    Option("--storm-delete-delay-min", 0.0, "least seconds between an accepted action and its racing DELETE",
           type=float),
    Option("--storm-delete-delay-max", 2.0, "most seconds between an accepted action and its racing DELETE",
           type=float),
    Option("--storm-delete-timing", "mixed", "when a racing DELETE goes out: uniform (a random moment between "
           "the two delays), in-flight (while the action is still seen in progress — server task_state, volume "
           "attaching — polled every 0.1 s, each poll a coin toss; never past the max delay) or mixed (either, "
           "at random)", choices=("uniform", "in-flight", "mixed")),
    Option("--storm-peer", "admin", "second credential acting on the same servers: admin (the admin credentials), "
           "member (a second user of the project, made through Keystone) or none", choices=("admin", "member", "none")),
    Option("--storm-plan-ratio", 0.3, "fraction of storm rounds that run a race plan: the member is brought "
           "where the action is accepted (shelved, for an unshelve), the action fired and the member deleted "
           "while it is in flight — the races a random round seldom lines up (unshelve, attach_volume, "
           "associate_floating_ip; those --storm-actions allows)", type=float),
    Option("--storm-group-ratio", 0.15, "fraction of storm rounds that are server-group bursts", type=float),
    Option("--storm-double-ratio", 0.2, "fraction of storm actions sent together with a second state change "
           "of the same server by the other credential (two clients changing its state at once)", type=float),
    Option("--storm-group-size", 0, "simultaneous boots of one server-group burst (0 = for anti-affinity one more "
           "than the compute hosts, so that two members must race for one host, for affinity as many; at least 2, and "
           "2 when the host count is unknown (it needs admin credentials); -1 = no bursts)", type=int),
    Option("--storm-group-policy", "mixed", "policy of the server-group bursts: affinity, anti-affinity "
           "or mixed (either, at random per burst)", choices=("affinity", "anti-affinity", "mixed")),
    Option("--storm-conflict-fails", False, "count a 409 (the API refusing a racing action) as a failure; "
           "by default it is counted on its own CONFLICT row only", switch=True),
    Option("--invariant-delete-timeout", 60.0, "seconds a deleted server may take to answer 404",
           type=_positive(float)),
    Option("--invariant-allocation-timeout", 90.0, "seconds after a server is gone that its Placement allocations "
           "(admin) are read (a late PUT seen at any read is a leak, even if nova-compute's 60 s periodic task heals "
           "it), and that its attached volumes and floating-IP associations may outlive it", type=_positive(float)),
    Option("--invariant-task-state-timeout", 120.0, "seconds a server may stay in one transitional "
           "task_state", type=_positive(float)),
    Option("--invariant-check-interval", 5.0, "seconds between scans of the run's servers", type=_positive(float)),
    Option("--invariant-settle-timeout", 60.0, "seconds to wait after the load for every server to settle "
           "before the end checks", type=_positive(float)),
    Option("--quota-step", 2, "after the load: set the project's instance quota to its usage + N (admin), boot N + 2 "
           "servers at once, check usage never ends above the limit, restore it (0 = off)", type=int),
)

SLA = "SLA: Rally's criteria, judged per action while the run goes and at its end (exit code 3 when only they fail)"
SLA_OPTIONS: tuple[Option, ...] = (
    Option("--sla", None, "comma-separated criteria NAME=VALUE (seconds, %): failure_rate=1, "
           "max_seconds_per_iteration=60, max_avg_duration=20, max_avg_duration_per_atomic.boot_server=10, "
           "outliers=1 (outliers.sigmas=10, outliers.min_iterations=10), performance_degradation=50, "
           "max_log_errors=0, max_invariant_violations=0", type=_checked(sla.parse)),
    Option("--sla-abort", False, "stop the run as soon as an SLA criterion fails (Rally's --abort-on-sla-failure)",
           switch=True),
)

FAULTS = "Faults during the load: restart, kill, stop and freeze the cloud's services (master only)"
FAULT_OPTIONS: tuple[Option, ...] = (
    Option("--fault", None, "a fault on a schedule, repeatable (or ';' between faults): 'at=30s action=restart "
           "service=nova-compute host=compute-1'; at= / after= (a number of actions ended) / every=, "
           "action= restart|kill|stop|start|freeze, service= "
           "nova-api|nova-conductor|nova-scheduler|nova-compute|placement|neutron|glance|keystone|rabbitmq|database, "
           "host= a host, random or all, for= how long a kill or freeze lasts", type=_checked(faultspec.parse),
           extra={"action": "append"}, web_ui=False),
    Option("--fault-preset", None, "how this cloud's services are acted on: devstack (systemd devstack@ units), "
           "systemd (distribution units), kolla / kolla-podman (containers), realnova (novastress-realnova's "
           "stack on this machine), embedded (the default with the embedded cloud)",
           choices=("devstack", "systemd", "kolla", "kolla-podman", "realnova", "embedded")),
    Option("--fault-command", None, "VERB=COMMAND over the preset's (repeatable): how this deployment "
           "starts, stops, restarts, kills, freezes or thaws a service, with {name}, {service} and {host}, e.g. "
           "'restart=sudo systemctl restart {name}'", extra={"action": "append"}, web_ui=False),
    Option("--fault-name", None, "SERVICE=NAME over the preset's (repeatable): the unit, container or daemon of a "
           "service, {host} allowed, e.g. 'nova-api=openstack-nova-api'", extra={"action": "append"}, web_ui=False),
    Option("--fault-local", False, "run the fault commands on this machine instead of over SSH on the "
           "service's host", switch=True),
    Option("--fault-dry-run", False, "print the commands the schedule would run, and run none", switch=True),
    Option("--fault-recovery-timeout", 120.0, "seconds to wait for a service to be back (a heartbeat in os-services "
           "newer than the fault, its API answering) and for each action's next success", type=_positive(float)),
    Option("--fault-window", 60.0, "seconds after a service is back during which log errors are marked as "
           "during its fault (Nova's rpc_response_timeout, 60 s by default, is how late a call it lost fails)",
           type=_positive(float, zero=True)),
)

LOG_WATCH = "Log watching (Tempest [stress] names kept: target_logfiles, target_ssh_user, ...)"
LOG_CHECK_INTERVAL = 60.0            # seconds between checks of remote logs (poll mode)
EMBEDDED_LOG_CHECK_INTERVAL = 1.0    # the embedded cloud's local logs: a stat per file
LOG_OPTIONS: tuple[Option, ...] = (
    Option("--target-logfiles", None, "shell glob(s) of the log files on every watched host, e.g. "
           "'/opt/stack/logs/*.log' (Tempest [stress] target_logfiles); none: the embedded cloud's logs"),
    Option("--target-ssh-user", None, "SSH user on the controller and compute nodes (default: ~/.ssh/config, "
           "then the local user)"),
    Option("--target-private-key-path", None, "SSH private key (default: ssh-agent and ~/.ssh keys)", secret=True),
    Option("--target-controller", None, "controller host[:port]: watched too, and where "
           "`nova-manage service list` runs with --log-discovery nova-manage"),
    Option("--log-check-interval", None, f"seconds between log checks in poll mode (default {LOG_CHECK_INTERVAL:g}; "
           f"{EMBEDDED_LOG_CHECK_INTERVAL:g} for the embedded cloud's local logs)", type=_positive(float)),
    Option("--log-hosts", None, "more hosts to watch, comma-separated host[:port] (added to discovery)"),
    Option("--log-host-map", None, "service host name -> SSH address: name=host[:port],... for clouds whose "
           "os-services host names are not SSH addresses"),
    Option("--log-discovery", None, "how to find the compute nodes: os-services (Compute API, admin), "
           "nova-manage (over SSH on the controller), none (only --target-controller/--log-hosts); "
           "default os-services when a cloud is configured", choices=("os-services", "nova-manage", "none")),
    Option("--log-pattern", None, "regular expression of an error line (default 'ERROR|TRACE', like Tempest's egrep)"),
    Option("--log-ignore", None, "regular expression: records with a matching line are not errors"),
    Option("--log-follow", False, "stream the logs (a read-only reader on one SSH channel per host, resumed at "
           "each file's offset after a reconnect) for sub-second detection instead of polling every "
           "--log-check-interval", switch=True),
    Option("--log-from-start", False, "also report errors already in the files when the run starts", switch=True),
    Option("--log-local", False, "watch --target-logfiles on this machine (the master's own files), whatever "
           "hosts and discovery say", switch=True),
    Option("--log-require-all-hosts", False, "a host whose logs were never read, or lost and not back by the "
           "end, fails the run (exit 1); without it the summary only names it", switch=True),
    Option("--known-hosts", None, "known_hosts file to verify host keys against (default ~/.ssh/known_hosts)"),
    Option("--log-auto-add-host-keys", False, "accept unknown SSH host keys (first seen wins; a changed key is "
           "still refused)", switch=True, web_ui=False),
    Option("--ssh-port", None, "SSH port of hosts given without one (default: ~/.ssh/config, then 22)", type=_positive(int)),
)

GROUPS: tuple[tuple[str, tuple[Option, ...]], ...] = (
    (CLOUD, CLOUD_OPTIONS), (TARGET, TARGET_OPTIONS), (RUN, RUN_OPTIONS), (EMBEDDED, EMBEDDED_OPTIONS),
    (SCENARIO, SCENARIO_OPTIONS), (STORM, STORM_OPTIONS), (SLA, SLA_OPTIONS), (FAULTS, FAULT_OPTIONS),
    (LOG_WATCH, LOG_OPTIONS))
ALL: dict[str, Option] = {opt.dest: opt for _, group in GROUPS for opt in group}


def add_arguments(parser, groups=GROUPS) -> None:
    """Add every option to Locust's parser (an `init_command_line_parser` listener calls this)."""
    for title, group_options in groups:
        group = parser.add_argument_group(title)
        for opt in group_options:
            action = group.add_argument(opt.flag, **argument_kwargs(opt))
            # what LocustArgumentParser.add_argument sets; argument groups do not take these kwargs
            action.include_in_web_ui = opt.web_ui
            action.is_secret = opt.secret
            action.is_required = False
            action.is_multiple = False


def argument_kwargs(opt: Option) -> dict[str, Any]:
    """argparse keyword arguments of an option (also used by `novastress-cleanup`'s own parser)."""
    kwargs: dict[str, Any] = {"default": opt.default, "help": opt.help, "dest": opt.dest, **opt.extra}
    if opt.switch:
        kwargs["action"] = "store_true"
    else:
        kwargs.update({key: value for key, value in (("type", opt.type), ("choices", opt.choices)) if value})
    return kwargs


def is_default(options, dest: str) -> bool:
    """True when an option still holds its default (so a lower-precedence source may set it)."""
    if dest not in ALL:
        return getattr(options, dest, None) in (None, False, "", [], 0)
    return getattr(options, dest, None) == ALL[dest].default


def convert(dest: str, text: str, current: Any) -> Any:
    """A config-file string converted to the type of option `dest` (used for tempest.conf)."""
    opt = ALL.get(dest)
    sample = opt.default if opt else current
    if (opt and opt.switch) or isinstance(sample, bool):
        return text.strip().lower() in ("1", "true", "yes", "on")
    if opt and opt.type is not None:
        return opt.type(text)
    if isinstance(sample, int):
        return int(text)
    if isinstance(sample, float):
        return float(text)
    return text
