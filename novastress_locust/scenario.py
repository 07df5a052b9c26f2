"""Scenario files -> Locust User classes: Tempest's JSON unchanged, or YAML.

    [{"action": "tempest.stress.actions.server_create_destroy.ServerCreateDestroyTest",
      "threads": 8, "use_admin": true, "use_isolated_tenants": true, "kwargs": {}}]

    - action: volume_attach_verify       # our names or Tempest's class paths
      threads: 2
      required_services: [cinder, neutron]
      kwargs: {new_volume: true}
      sla: {failure_rate: 5, max_avg_duration: 30}   # Rally's criteria for this entry (sla.py)

Each entry becomes one User class whose `fixed_count` is its `threads` (with no `-u`, the
run spawns exactly the scenario's threads, all at once). `use_isolated_tenants` gives each
user its own project and user, made through Keystone by the admin credentials at its start
and deleted at its stop; `use_admin` runs the user with the admin credentials. An entry
whose `required_services` are not in the catalog is reported and skipped; the others run.
`--serial` runs the entries one after another, the run time split evenly. An entry's `sla`
(a mapping, or `--sla`'s text) judges its action instead of `--sla`'s per-action criteria.
A YAML mapping `{entries: [...], faults: [...]}` adds a fault schedule (faultplan.py) to the
run, each fault a `--fault` text or a mapping of its keys:

    entries: [{action: server_create_destroy, threads: 4}]
    faults:
      - at=20s action=restart service=nova-compute host=random
      - {after: 10, action: freeze, service: nova-conductor, for: 5s}

Any problem with a file is one line naming the file, the entry and the fix (exit code 2)
before anything starts.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from locust import LoadTestShape
from locust.runners import WorkerRunner

from .actions import REGISTRY, ActionSpec, Needs, find
from .credentials import CloudTarget
from .discovery import DiscoveryError, discover
from .errors import UserError, exit_with
from .kinds import KINDS
from .sla import PER_RUN, Sla
from .sla import parse as parse_sla
from .client import ApiError, OpenStackClient, shared_waiter
from .state import run_state
from .user import NovaUser

LOG = logging.getLogger("novastress")
ENTRY_KEYS = {"action", "threads", "use_admin", "use_isolated_tenants", "required_services", "kwargs", "sla"}
DEFAULT_THREADS = 4
# Tempest's service names (its [service_available] section) -> ours (CloudTarget.endpoint);
# any other name is a catalog service type
SERVICES = {"nova": "compute", "neutron": "network", "cinder": "volume", "glance": "image",
            "swift": "object-store", "heat": "orchestration", "ceilometer": "metering",
            "keystone": "identity"}


class ScenarioError(UserError):
    """A scenario file cannot be used; str() is one line naming the file, the entry and the fix."""


@dataclass
class Entry:
    """One entry of a scenario file."""

    index: int                      # 1-based, as a person counts them
    spec: ActionSpec
    threads: int | None             # None: --default-thread-number-per-action, else 4
    use_admin: bool = False
    use_isolated_tenants: bool = False
    required_services: list[str] = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)
    sla: Sla = Sla()                # the entry's own criteria, judged on its action instead of --sla's


def _read(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read it: {exc.strerror or exc}; check the --scenario path") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{path}: not valid YAML{where}: {problem}") from None


def load(path: str | os.PathLike) -> list[Entry]:
    """Read and check a scenario file; ScenarioError (one line) on any problem."""
    path = Path(path)
    document = _read(path)
    if isinstance(document, dict):
        unknown = sorted(set(document) - {"entries", "faults"})
        if unknown:
            raise ScenarioError(f"{path}: unknown key {', '.join(map(repr, unknown))} (a scenario mapping has "
                                f"'entries' and 'faults')")
        document = document.get("entries")  # YAML may wrap the list: {entries: [...], faults: [...]}
    if not isinstance(document, list) or not document:
        raise ScenarioError(f"{path}: must be a non-empty list of entries like "
                            f'[{{"action": "server_create_destroy", "threads": 4}}]')
    entries = [_entry(path, index, raw) for index, raw in enumerate(document, 1)]
    judged: dict[str, Entry] = {}
    for entry in entries:
        other = judged.setdefault(entry.spec.name, entry) if entry.sla else None
        if other is not None and other is not entry and other.sla != entry.sla:
            raise ScenarioError(f"{path}: entries {other.index} and {entry.index} run {entry.spec.name} with "
                                f"different 'sla': their iterations share one row; give both the same")
    return entries


def load_faults(path: str | os.PathLike) -> list[str]:
    """The file's `faults:` (faultplan.py's texts, or mappings of the same keys); [] without."""
    from .faultspec import FaultError, parse as parse_faults
    path = Path(path)
    document = _read(path)
    raw = document.get("faults") if isinstance(document, dict) else None
    if raw is None:
        return []
    example = "'at=30s action=restart service=nova-compute host=compute-1'"
    if isinstance(raw, str):
        raw = [raw]                       # one fault (or several with ';')
    if not isinstance(raw, list):
        raise ScenarioError(f"{path}: 'faults' must be a list of faults like {example}")
    texts = []
    for index, item in enumerate(raw, 1):
        if isinstance(item, dict):
            text = " ".join(f"{key}={value}" for key, value in item.items())
        elif isinstance(item, str):
            text = item
        else:
            raise ScenarioError(f"{path}: fault {index}: write it as {example}, or a mapping of the same keys")
        try:
            parse_faults(text)
        except FaultError as exc:
            raise ScenarioError(f"{path}: fault {index}: {exc}") from None
        texts.append(text)
    return texts


def _entry(path: Path, index: int, raw: Any) -> Entry:
    where = f"{path}: entry {index}"
    if not isinstance(raw, dict):
        raise ScenarioError(f"{where}: must be a mapping with an 'action', not {type(raw).__name__}")
    unknown = sorted(set(raw) - ENTRY_KEYS)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {', '.join(map(repr, unknown))} "
                            f"(known: {', '.join(sorted(ENTRY_KEYS))})")
    name = raw.get("action")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: 'action' is missing; name an action such as server_create_destroy")
    spec = find(name)
    if spec is None:
        raise ScenarioError(f"{where}: unknown action {name!r}; use one of {', '.join(sorted(REGISTRY))} "
                            f"or a tempest.stress.actions class path")
    where = f"{where} ({spec.name})"
    threads = raw.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ScenarioError(f"{where}: 'threads' must be a positive integer, not {threads!r}")
    for key in ("use_admin", "use_isolated_tenants"):
        if key in raw and not isinstance(raw[key], bool):
            raise ScenarioError(f"{where}: {key!r} must be true or false, not {raw[key]!r}")
    services = raw.get("required_services", [])
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ScenarioError(f"{where}: 'required_services' must be a list of service names, not {services!r}")
    kwargs = {} if raw.get("kwargs") is None else raw["kwargs"]
    problem = spec.check(kwargs)
    if problem:
        raise ScenarioError(f"{where}: {problem}")
    try:
        sla = parse_sla(raw.get("sla") or "")
    except argparse.ArgumentTypeError as exc:
        raise ScenarioError(f"{where}: 'sla': {exc}") from None
    run_wide = [c.name for c in sla.criteria if c.name in PER_RUN]
    if run_wide:
        raise ScenarioError(f"{where}: 'sla': {', '.join(run_wide)} is judged on the whole run: give it with --sla")
    return Entry(index, spec, threads, bool(raw.get("use_admin", False)),
                 bool(raw.get("use_isolated_tenants", False)), list(services), dict(kwargs), sla)


# -- users ------------------------------------------------------------------------------
@dataclass
class Tenant:
    """An isolated project and user made for one Locust user."""

    project_id: str
    user_id: str
    target: CloudTarget


class ScenarioUser(NovaUser):
    """A user of a scenario entry: Tempest's kwargs, admin or isolated credentials."""

    abstract = True
    kwargs: dict = {}
    use_admin = False
    use_isolated_tenants = False
    required_services: list[str] = []
    entry_index = 0

    @classmethod
    def run_init(cls, environment, runner) -> None:
        """After the plugin's preflight: skip entries whose services are missing, size the run, --serial."""
        opts = environment.parsed_options
        ours = [entry for entry in environment.user_classes if issubclass(entry, ScenarioUser)]
        if opts is None or not ours or not hasattr(opts, "prefix"):
            return
        state = run_state(environment)
        if state.embedded is not None:
            # workers get these with the other options at test start
            state.use_embedded_admin()      # isolated tenants and use_admin entries
            if not opts.guest_ssh_port and state.embedded.info.get("guest_ssh_port"):
                opts.guest_ssh_port = int(state.embedded.info["guest_ssh_port"])
        # Locust's --tags may have left a class without tasks
        kept = [entry for entry in environment.user_classes if entry.tasks]
        if isinstance(runner, WorkerRunner):
            environment.user_classes[:] = kept
            return
        default_threads = opts.default_thread_number_per_action
        client = OpenStackClient(state, state.ensure_target(), "scenario")
        running = []
        for entry in kept:
            missing = [s for s in getattr(entry, "required_services", []) if not catalog_has(client, s)]
            if missing:
                print(f"novastress: skipping {entry.__name__} (entry {entry.entry_index}, {entry.tasks[0].__name__}): "
                      f"required service {', '.join(missing)} not in the catalog", file=sys.stderr, flush=True)
                continue
            if default_threads and not getattr(entry, "explicit_threads", True):
                entry.threads = entry.fixed_count = default_threads
            running.append(entry)
        if not running:
            exit_with("novastress", "every scenario entry was skipped: nothing to run")
        environment.user_classes[:] = running
        if state.users_from_threads:
            opts.num_users = sum(entry.fixed_count or entry.threads for entry in running)
        if state.spawn_rate_from_users:
            opts.spawn_rate = float(opts.num_users)
        if opts.serial:
            if not opts.run_time:
                exit_with("novastress", "--serial splits the run time between the entries: give -t/--run-time, "
                          "e.g. -t 5m")
            run_time = float(opts.run_time)
            steps = [(entry, entry.fixed_count or entry.threads) for entry in running]
            for entry in running:
                # fixed counts would keep a finished step's users: each step names its class instead
                entry.fixed_count, entry.weight = 0, 1
            shape = SerialShape(steps, run_time / len(running))
            shape.runner = environment.runner
            environment.shape_class = shape

    @classmethod
    def run_test_stop(cls, environment) -> None:
        """Projects and users named `<prefix>-<run id>-` a killed user could not delete."""
        opts = environment.parsed_options
        if opts is None or not hasattr(opts, "prefix") or isinstance(environment.runner, WorkerRunner) \
                or opts.leave_dirty_stack:
            return
        if not any(getattr(entry, "use_isolated_tenants", False) for entry in environment.user_classes):
            return
        state = run_state(environment)
        if state.target is None or not state.run_id:
            return
        pattern = f"{state.prefix}-{state.run_id}-"
        try:
            admin = OpenStackClient(state, state.admin_target(), "sweep")
            for kind in (KINDS["user"], KINDS["project"]):
                for record in admin.request("identity", "GET", kind.collection).json()[kind.list_key]:
                    if str(record.get("name", "")).startswith(pattern):
                        kind.delete(admin.request, record["id"])
                        state.swept.append(record["name"])
        except Exception as exc:
            LOG.error("novastress: could not sweep isolated projects/users: %s", exc)

    def setup(self) -> None:
        self.tenant: Tenant | None = None
        self.admin: OpenStackClient | None = None
        if not (self.use_isolated_tenants or self.use_admin):
            super().setup()
            return
        self.admin = OpenStackClient(self.state, self.state.admin_target(), f"{self.name}-admin")
        target = self.admin.target
        if self.use_isolated_tenants:
            self.tenant = self._create_tenant()
            target = self.tenant.target
        self.client = OpenStackClient(self.state, target, self.name)
        self.waiter = shared_waiter(self.state, self.client, self.waiter_kind)

    def on_stop(self) -> None:
        super().on_stop()
        if getattr(self, "tenant", None) is not None and not self.options.leave_dirty_stack:
            self._delete_tenant(self.tenant)
            self.tenant = None

    def _create_tenant(self) -> Tenant:
        """Project + user + member role, as Tempest's driver made for use_isolated_tenants."""
        keystone = self.admin.identity
        project_name, user_name = self.resource_name("project"), self.resource_name("user")
        password = secrets.token_urlsafe(18)
        with self.atomic("create_isolated_tenant"):
            project = keystone.post("/v3/projects", json={"project": {
                "name": project_name, "domain_id": "default", "description": "novastress isolated tenant"}},
                expect=(201,)).json()["project"]
            try:
                user = keystone.post("/v3/users", json={"user": {
                    "name": user_name, "password": password, "domain_id": "default",
                    "default_project_id": project["id"]}}, expect=(201,)).json()["user"]
                roles = keystone.get("/v3/roles", params={"name": "member"}).json()["roles"]
                if not roles:
                    raise ApiError("Keystone has no 'member' role to give the isolated user")
                keystone.request("PUT", f"/v3/projects/{project['id']}/users/{user['id']}/roles/{roles[0]['id']}",
                                 expect=(204,))
            except Exception:
                KINDS["project"].delete(self.admin.request, project["id"])
                raise
        base = self.admin.target
        auth = {"auth_url": base.auth.get("auth_url"), "username": user_name, "password": password,
                "project_name": project_name, "user_domain_id": "default", "project_domain_id": "default"}
        return Tenant(project["id"], user["id"], CloudTarget("password", auth, "isolated tenant",
                                                             base.region_name, base.interface, base.verify))

    def _delete_tenant(self, tenant: Tenant) -> None:
        try:
            with self.atomic("delete_isolated_tenant"):
                KINDS["user"].delete(self.admin.request, tenant.user_id)
                KINDS["project"].delete(self.admin.request, tenant.project_id)
        except Exception as exc:
            LOG.error("%s could not delete its isolated project/user: %s", self.name, exc)


def class_name(spec: ActionSpec, taken: set[str]) -> str:
    """`volume_attach_delete` -> `VolumeAttachDelete` (then `VolumeAttachDelete2`, ...)."""
    base = "".join(part.capitalize() for part in spec.name.split("_"))
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}{number}"
    taken.add(name)
    return name


def user_classes(entries: list[Entry], default_threads: int = 0,
                 module: str = __name__) -> list[type[ScenarioUser]]:
    """One User class per entry, `fixed_count` = its threads."""
    taken: set[str] = set()
    classes = []
    for entry in entries:
        threads = entry.threads or default_threads or DEFAULT_THREADS
        attributes = {"threads": threads, "fixed_count": threads, "tasks": [entry.spec.task],
                      "kwargs": entry.kwargs, "use_admin": entry.use_admin,
                      "use_isolated_tenants": entry.use_isolated_tenants,
                      "required_services": entry.required_services, "entry_index": entry.index,
                      "explicit_threads": entry.threads is not None, "__module__": module,
                      "entry_sla": (entry.spec.name, entry.sla) if entry.sla else None}
        if entry.use_admin or entry.use_isolated_tenants:
            # made with, or run as, the admin credentials (cloudprofile.fit leaves it out without them)
            attributes["needs"] = Needs(admin=True, purpose="use_isolated_tenants" if entry.use_isolated_tenants
                                        else "use_admin")
        classes.append(type(class_name(entry.spec, taken), (ScenarioUser,), attributes))
    return classes


# -- wiring a locustfile -----------------------------------------------------------------
def command_line(argv: list[str] | None = None) -> argparse.Namespace:
    """The few options a locustfile needs before Locust parses the rest (classes exist at import)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--scenario", default=os.environ.get("LOCUST_SCENARIO"))
    parser.add_argument("--stress-type", default=os.environ.get("LOCUST_STRESS_TYPE"))
    parser.add_argument("--call-inherited", action="store_true",
                        default=os.environ.get("LOCUST_CALL_INHERITED", "") not in ("", "0", "false"))
    parser.add_argument("--stress-module", action="append", default=[])
    parsed, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return parsed


def classes_from_command_line(module: str) -> list[type[ScenarioUser]]:
    """`--scenario FILE` -> User classes for the locustfile `module`; exit 2 on a bad file."""
    path = command_line().scenario
    if not path:
        exit_with("novastress", "no scenario given: add --scenario FILE (a Tempest JSON file or YAML), e.g. "
                  "--scenario locustfiles/etc/server-create-destroy-test.json")
    try:
        classes = user_classes(load(path), module=module)
        faults = load_faults(path)
    except ScenarioError as exc:
        exit_with("novastress", str(exc))
    if faults:
        def scenario_faults(opts, faults=faults) -> None:
            """The file's faults after --fault's (the master's schedule runs them all)."""
            opts.fault = [*(getattr(opts, "fault", None) or []), *faults]
        for user_class in classes:
            user_class.option_defaults = scenario_faults
    return classes


def catalog_has(client: OpenStackClient, service: str) -> bool:
    return client.has_service(SERVICES.get(service.lower(), service))


class SerialShape(LoadTestShape):
    """Tempest's --serial: each step's users alone, for an even share of the run time."""

    def __init__(self, steps: list[tuple[type, int]], step_seconds: float) -> None:
        super().__init__()
        self.steps = steps
        self.step_seconds = step_seconds

    current = 0

    def tick(self):
        index = int(self.get_run_time() // self.step_seconds)
        if index >= len(self.steps):
            return None
        user_class, count = self.steps[index]
        if index != self.current and self.runner.user_count:
            # Locust keeps users of classes a tick no longer names: stop the last step's first
            return 0, float(max(count for _, count in self.steps)), None
        self.current = index
        return count, float(count), [user_class]


def classes_from_discovery(module: str) -> list[type]:
    """User classes for locustfiles/all.py from --stress-type/--call-inherited/--stress-module."""
    parsed = command_line()
    try:
        found = discover(parsed.stress_module, parsed.stress_type, parsed.call_inherited, actions=REGISTRY)
    except DiscoveryError as exc:
        exit_with("novastress", str(exc))
    if not found:
        exit_with("novastress", f"no @stresstest action or test has type {parsed.stress_type!r}"
                  if parsed.stress_type else "no @stresstest action or test found")
    entries = []
    for index, item in enumerate(found, 1):
        spec = REGISTRY[item.action]
        problem = spec.check(item.kwargs)
        if problem:
            exit_with("novastress", f"{item.name}: {problem}")
        entries.append(Entry(index, spec, None, kwargs=item.kwargs))
    classes = user_classes(entries, module=module)
    for cls, item in zip(classes, found):
        if item.action == "unit_test":
            # name the class after the test, not "UnitTest2"
            cls.__name__ = cls.__qualname__ = _class_name_for_test(item.name)
    return classes


def _class_name_for_test(test_id: str) -> str:
    parts = test_id.replace("::", ".").split(".")[-2:]
    return "".join(part[:1].upper() + part[1:] for part in "_".join(parts).split("_") if part)
