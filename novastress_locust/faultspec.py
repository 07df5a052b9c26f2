"""The fault schedule's words and the presets that say how a deployment's services are acted on
(faultplan.py runs them).

    parse("at=30s action=restart service=nova-compute host=compute-1; at=1m action=freeze service=nova-conductor for=5s")
    command(PRESETS["kolla"], "freeze", "nova-conductor", "")     # 'sudo docker pause nova_conductor'
"""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass

from .errors import UserError

ACTIONS = ("restart", "kill", "stop", "start", "freeze")
VERBS = ("start", "stop", "restart", "kill", "freeze", "thaw")       # what a preset's commands do
KEYS = ("at", "after", "every", "action", "service", "host", "for")
SERVICES = ("nova-api", "nova-conductor", "nova-scheduler", "nova-compute", "placement", "neutron",
            "glance", "keystone", "rabbitmq", "database")
NOVA_BINARIES = ("nova-conductor", "nova-scheduler", "nova-compute")    # each reports to os-services
API_TYPES = {"nova-api": "compute", "placement": "placement", "neutron": "network", "glance": "image",
             "keystone": "identity"}
MAX_REPEATS = 1000             # an every= fault fires at most this often in one test
COMMAND_TIMEOUT = 180.0        # one command (a restart waits for the service to answer)


class FaultError(UserError):
    """A fault schedule or preset the user must fix; str is one line."""


@dataclass(frozen=True)
class Preset:
    """How one kind of deployment acts on its services: a command per verb, a name per service."""

    commands: dict[str, str]           # verb -> template with {name} (and {host})
    names: dict[str, str]              # service -> unit, container or daemon ({host} allowed)
    local: bool = False                # commands run on this machine, whatever the host


def _systemd(names: dict[str, str]) -> Preset:
    return Preset({verb: f"sudo systemctl {how} {{name}}" for verb, how in zip(VERBS, (
        "start", "stop", "restart", "kill --signal=SIGKILL", "kill --signal=SIGSTOP", "kill --signal=SIGCONT"))}, names)


def _containers(engine: str) -> Preset:
    return Preset({verb: f"sudo {engine} {command} {{name}}"
                   for verb, command in zip(VERBS, ("start", "stop", "restart", "kill", "pause", "unpause"))},
        {"nova-api": "nova_api", "nova-conductor": "nova_conductor", "nova-scheduler": "nova_scheduler",
         "nova-compute": "nova_compute", "placement": "placement_api", "neutron": "neutron_server",
         "glance": "glance_api", "keystone": "keystone", "rabbitmq": "rabbitmq", "database": "mariadb"})


PRESETS: dict[str, Preset] = {
    "devstack": _systemd({"nova-api": "devstack@n-api", "nova-conductor": "devstack@n-cond-cell1",
                          "nova-scheduler": "devstack@n-sch", "nova-compute": "devstack@n-cpu",
                          "placement": "devstack@placement-api", "neutron": "devstack@q-svc",
                          "glance": "devstack@g-api", "keystone": "devstack@keystone",
                          "rabbitmq": "rabbitmq-server", "database": "mysql"}),
    "systemd": _systemd({"nova-api": "nova-api", "nova-conductor": "nova-conductor",
                         "nova-scheduler": "nova-scheduler", "nova-compute": "nova-compute",
                         "placement": "apache2", "neutron": "neutron-server", "glance": "glance-api",
                         "keystone": "apache2", "rabbitmq": "rabbitmq-server", "database": "mysql"}),
    "kolla": _containers("docker"),
    "kolla-podman": _containers("podman"),
    "realnova": Preset({verb: f"{shlex.quote(sys.executable)} -m novastress_locust.realnova.cli service "
                              f"{verb} {{name}}" for verb in VERBS},
                       {**{service: service for service in SERVICES}, "nova-compute": "nova-compute-{host}",
                        "database": "mariadb"}, local=True),
    # the embedded cloud: POST /fakecloud/services (faultplan's runner), no command line
    "embedded": Preset({verb: f"{verb} {{name}}" for verb in VERBS},
                       {service: service for service in SERVICES}, local=True),
}


# -- the schedule -------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    action: str
    service: str
    host: str = ""                 # "", a host, "random" or "all"
    at: float = 0.0                # seconds after the test started
    every: float | None = None
    hold: float = 0.0              # for=: how long a kill or freeze lasts
    text: str = ""
    after: int | None = None       # after=N: once N actions have ended (instead of at=)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")


def _seconds(key: str, value: str, text: str) -> float:
    found = _DURATION.match(value.strip())
    if not found:
        raise FaultError(f"--fault {text!r}: {key}={value} is not a duration; write e.g. {key}=30s, 500ms or 2m")
    return float(found.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[found.group(2)]


def parse(texts: list[str] | str | None) -> list[Fault]:
    """Every fault of the options (repeated --fault, `;` between faults); FaultError on a mistake."""
    if not texts:
        return []
    return [_parse_one(one) for text in ([texts] if isinstance(texts, str) else texts)
            for one in (part.strip() for part in str(text).split(";")) if one]


def _parse_one(text: str) -> Fault:
    words: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or not value:
            raise FaultError(f"--fault {text!r}: {word!r} is not key=value; e.g. "
                             f"'at=30s action=restart service=nova-compute host=compute-1'")
        if key not in KEYS:
            raise FaultError(f"--fault {text!r}: unknown key {key!r}; keys: {', '.join(KEYS)}")
        words[key] = value
    action, service = words.get("action"), words.get("service")
    if action not in ACTIONS:
        raise FaultError(f"--fault {text!r}: action={action or '?'}; use one of {', '.join(ACTIONS)}")
    if service not in SERVICES:
        raise FaultError(f"--fault {text!r}: service={service or '?'}; use one of {', '.join(SERVICES)}")
    if "at" not in words and "every" not in words and "after" not in words:
        raise FaultError(f"--fault {text!r}: say when, with at=30s, every=60s or after=20 (actions)")
    after = None
    if "after" in words:
        if "at" in words:
            raise FaultError(f"--fault {text!r}: at= and after= both say when the fault starts; give one")
        if not words["after"].isdigit() or int(words["after"]) < 1:
            raise FaultError(f"--fault {text!r}: after={words['after']} must be a number of actions, e.g. after=20")
        after = int(words["after"])
    every = _seconds("every", words["every"], text) if "every" in words else None
    if every is not None and every <= 0:
        raise FaultError(f"--fault {text!r}: every= must be more than zero")
    hold = _seconds("for", words["for"], text) if "for" in words else (5.0 if action == "freeze" else 0.0)
    if action in ("restart", "stop", "start") and "for" in words:
        raise FaultError(f"--fault {text!r}: for= goes with kill and freeze only (a stop lasts until a start "
                         f"or the end of the run)")
    start = _seconds("at", words["at"], text) if "at" in words else 0.0 if after else every
    return Fault(action, service, words.get("host", ""), start, every, hold, text, after)


def preset(name: str | None) -> Preset:
    if not name:
        raise FaultError("--fault needs --fault-preset (how this cloud's services are started and stopped): "
                         f"{', '.join(PRESETS)}")
    if name not in PRESETS:
        raise FaultError(f"--fault-preset {name}: unknown; use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def customized(chosen: Preset, commands: list[str] | None, names: list[str] | None) -> Preset:
    """The preset with `--fault-command VERB=TEMPLATE` and `--fault-name SERVICE=NAME` over it
    (a deployment whose units or containers are named otherwise, or acted on another way)."""
    if not commands and not names:
        return chosen
    new_commands, new_names = dict(chosen.commands), dict(chosen.names)
    for text in commands or []:
        verb, sep, template = text.partition("=")
        if not sep or verb not in VERBS or not template.strip():
            raise FaultError(f"--fault-command {text!r}: write VERB=COMMAND, VERB one of {', '.join(VERBS)}, "
                             f"e.g. 'restart=sudo systemctl restart {{name}}'")
        try:
            template.format(name="n", host="h", service="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise FaultError(f"--fault-command {text!r}: {exc!s} is not a placeholder; use {{name}}, {{service}} "
                             f"and {{host}}") from None
        new_commands[verb] = template
    for text in names or []:
        service, sep, name = text.partition("=")
        if not sep or service not in SERVICES or not name.strip():
            raise FaultError(f"--fault-name {text!r}: write SERVICE=NAME, SERVICE one of {', '.join(SERVICES)}, "
                             f"e.g. 'nova-api=openstack-nova-api'")
        new_names[service] = name
    return Preset(new_commands, new_names, chosen.local)


def command(chosen: Preset, verb: str, service: str, host: str) -> str:
    name = chosen.names[service].format(host=host or "")
    return chosen.commands[verb].format(name=shlex.quote(name), host=shlex.quote(host or ""),
                                        service=shlex.quote(service))
