"""Safe, prefix-scoped cleanup: delete only what novastress created.

    novastress-cleanup --os-cloud mycloud                       # list what would go (every run)
    novastress-cleanup --os-cloud mycloud --run-id 1a2b3c --yes # delete one run's leftovers
    python -m novastress_locust.cleanup --os-cloud admin --all-projects --yes

Every resource a run creates is named `<prefix>-<run id>-...` (floating IPs, which have no
name in Neutron, carry it as their description). Only resources whose name starts with
`<prefix>-` (or `<prefix>-<run id>-` with `--run-id`) are touched, never anything else:
Tempest's cleanup deleted every tenant's servers, this one cannot. Kinds go in dependency
order (servers before their server groups and the floating IPs, volumes and security groups they hold; server
snapshots (images) after their servers; volume snapshots before their volumes; projects and
users last), each with retries, backoff and a deadline.
The end is a table (kind, found, deleted, failed); the exit code is 1 when anything could
not be deleted, 2 for a configuration problem. A run's own end-of-run sweep (sweep.py) is
`sweep_run()` below: the same finding and deleting, without Locust.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NoReturn

from . import options as novastress_options
from .cloud import CallFailed, Retry, RetryingClient
from .credentials import CloudTarget, resolve
from .errors import UserError, exit_with, first_line
from .kinds import KINDS, reset_volume, volume_held_for

LOG = logging.getLogger("novastress.cleanup")

# the rows of its table, in the order it deletes them (attachments are undone before volumes go), and the
# service that lists each
TABLE = {"servers": "compute", "server groups": "compute", "images": "image", "floating IPs": "network",
         "volume attachments": "volume", "volume snapshots": "volume", "volumes": "volume", "keypairs": "compute",
         "security groups": "network", "projects": "identity", "users": "identity"}
# server statuses that are as good as gone
GONE = ("DELETED", "SOFT_DELETED")


class CleanupError(UserError):
    """A problem the user can fix (credentials, scope); str() is one clear line."""


@dataclass
class Resource:
    """One thing to delete."""

    kind: str
    id: str
    name: str
    project_id: str | None = None
    detail: dict = field(default_factory=dict)

    def __str__(self) -> str:
        where = f" in project {self.project_id}" if self.project_id else ""
        return f"{self.name} ({self.id}){where}"


@dataclass
class KindResult:
    """What happened to one kind: the row of the final table."""

    kind: str
    found: list[Resource] = field(default_factory=list)
    deleted: list[Resource] = field(default_factory=list)
    failed: list[tuple[Resource | None, str]] = field(default_factory=list)
    note: str | None = None


@dataclass
class Scope:
    """Which names are ours: `<prefix>-` (every run) or `<prefix>-<run id>-` (one run)."""

    prefix: str
    run_id: str | None = None

    def __post_init__(self) -> None:
        if not self.prefix or not re.fullmatch(r"[\w.]+", self.prefix):
            raise CleanupError(f"--prefix {self.prefix!r}: use letters, digits, '_' or '.' (the "
                               f"prefix the runs used, default {novastress_options.ALL['prefix'].default})")
        if self.run_id is not None and not re.fullmatch(r"[\w.-]+", self.run_id):
            raise CleanupError(f"--run-id {self.run_id!r}: use the run id the run printed "
                               f"('run id 1a2b3c;')")

    @property
    def pattern(self) -> str:
        return f"{self.prefix}-{self.run_id}-" if self.run_id else f"{self.prefix}-"

    def owns(self, name: Any) -> bool:
        return isinstance(name, str) and name.startswith(self.pattern)


@dataclass
class Settings:
    """How hard to try."""

    retries: int = 5
    backoff: float = 0.5           # first retry after about this many seconds, doubling
    max_backoff: float = 8.0
    interval: float = 1.0          # between "is it gone yet?" polls
    timeout: float = 600.0         # the whole cleanup
    request_timeout: float = 30.0  # one HTTP call
    concurrency: int = 8


# -- the cleanup -------------------------------------------------------------------------
class Cleanup:
    """Find (and with `delete=True` delete) everything in scope, kind by kind."""

    def __init__(self, cloud: RetryingClient, scope: Scope, settings: Settings, all_projects: bool = False,
                 delete: bool = False, out=None, keypair_users: Iterable[str] = ()) -> None:
        self.cloud = cloud
        self.settings = settings
        self.scope = scope
        self.all_projects = all_projects
        self.delete = delete
        self.out = out or sys.stdout
        # keypairs belong to a user, not a project: an admin looking in every project also
        # lists these users' keypairs (a run's own member user, when an admin sweeps its run)
        self.keypair_users = [user for user in keypair_users if user]
        self.results: dict[str, KindResult] = {kind: KindResult(kind) for kind in TABLE}
        self._lock = threading.Lock()
        self._isolated: dict[str, list[Resource]] = {}   # "project" / "user": the run's isolated ones
        self._foreign_snapshots: dict[str, list[str]] = {}

    # -- driving --------------------------------------------------------------------
    def run(self) -> dict[str, KindResult]:
        # how each kind of TABLE is found and deleted; a plain DELETE is enough for the others
        steps: dict[str, tuple[Callable[[], list[Resource]], Callable[[Resource], None]]] = {
            "servers": (self.find_servers, self.delete_server),
            "server groups": (self.find_server_groups, self._delete),
            "images": (self.find_images, self.delete_image),
            "floating IPs": (self.find_floating_ips, self._delete),
            "volume attachments": (self.find_attachments, self.delete_attachment),
            "volume snapshots": (self.find_snapshots, self.delete_snapshot),
            "volumes": (self.find_volumes, self.delete_volume),
            "keypairs": (self.find_keypairs, self.delete_keypair),
            "security groups": (self.find_security_groups, self.delete_security_group),
            "projects": (lambda: self._find_isolated("project"), self._delete),
            "users": (lambda: self._find_isolated("user"), self._delete),
        }
        for kind, service in TABLE.items():
            find, remove = steps[kind]
            result = self.results[kind]
            try:
                if self.cloud.endpoint(service) is None:
                    # nothing of this kind can exist: a note in the table, not a failure
                    raise Skip(f"no {service} service in the catalog")
                result.found = find()
            except Skip as skip:
                result.note = str(skip)
                continue
            except CallFailed as exc:
                result.failed.append((None, f"could not list {kind}: {exc}"))
                continue
            except Exception as exc:  # a surprise must not keep the later kinds from their turn
                result.failed.append((None, f"could not list {kind}: {type(exc).__name__}: "
                                            f"{first_line(exc)}"))
                continue
            for resource in result.found:
                self._say(f"{'deleting' if self.delete else 'would delete'} {kind[:-1]} {resource}")
            if self.delete and result.found:
                self._delete_all(result, remove)
        return self.results

    def _delete_all(self, result: KindResult, remove: Callable[[Resource], None]) -> None:
        def one(resource: Resource) -> None:
            try:
                if self.cloud.remaining() <= 0:
                    raise CallFailed(f"the cleanup timeout ({self.settings.timeout:g} s) passed")
                remove(resource)
            except (CallFailed, StillThere) as exc:
                with self._lock:
                    result.failed.append((resource, str(exc)))
            except Exception as exc:  # a surprise must not hide the other resources' fate
                with self._lock:
                    result.failed.append((resource, f"{type(exc).__name__}: {first_line(exc)}"))
            else:
                with self._lock:
                    result.deleted.append(resource)

        workers = max(1, min(self.settings.concurrency, len(result.found)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanup") as pool:
            list(pool.map(one, result.found))

    def _say(self, line: str) -> None:
        with self._lock:
            print(line, file=self.out, flush=True)

    def _wait_gone(self, resource: Resource, show: Callable[[], dict | None],
                   on_error: Callable[[dict], None] | None = None,
                   dropped: Callable[[dict], bool] = lambda record: False) -> None:
        """Poll until `show()` says the resource is gone (None), within the cleanup deadline; one
        that went to ERROR, or whose delete was `dropped`, goes to `on_error`."""
        last: dict | None = None
        while self.cloud.remaining() > 0:
            last = show()
            if last is None:
                return
            status = str(last.get("status", ""))
            if status.upper() in GONE:
                return
            if on_error is not None and (status.lower() in ("error", "error_deleting") or dropped(last)):
                on_error(last)  # deletes again, or raises StillThere when it has tried enough
            time.sleep(min(self.settings.interval, max(0.0, self.cloud.remaining())))
        state = str(last.get("status")) if last else "present"
        task = last.get("OS-EXT-STS:task_state") if last else None
        raise StillThere(f"still {state}{f' ({task})' if task else ''} after the cleanup timeout "
                         f"({self.settings.timeout:g} s)")

    # -- listing helpers --------------------------------------------------------------
    def _own_project_filter(self) -> dict[str, str]:
        return {} if self.all_projects else {"project_id": self.cloud.project_id or ""}

    def _paged(self, service: str, path: str, key: str, params: dict[str, str], by_offset: bool = False) -> list[dict]:
        """Every item of a paged list (limit and marker, or offset), bounded."""
        items: list[dict] = []
        query = dict(params, limit="1000")
        for _ in range(100):
            page = self.cloud.call(service, "GET", path, params=query).json().get(key, [])
            items += page
            if len(page) < 1000:
                break
            query.update({"offset": str(len(items))} if by_offset else {"marker": page[-1]["id"]})
        return items

    def _delete(self, resource: Resource) -> None:
        _kind(resource).delete(self.cloud.call, resource.id)

    # -- servers -----------------------------------------------------------------------
    def find_servers(self) -> list[Resource]:
        params = {"name": f"^{re.escape(self.scope.pattern)}"}
        if self.all_projects:
            params["all_tenants"] = "1"
        servers = self._paged("compute", "/servers/detail", "servers", params)
        return [Resource("server", s["id"], s["name"], s.get("tenant_id"), s) for s in servers
                if self.scope.owns(s.get("name")) and s.get("status") not in GONE]

    def _show(self, resource: Resource) -> dict | None:
        return _kind(resource).show(self.cloud.call, resource.id)

    def delete_server(self, resource: Resource) -> None:
        def delete() -> None:
            try:
                KINDS["server"].delete(self.cloud.call, resource.id)
            except CallFailed as exc:
                if exc.status == 409 and "locked" in str(exc).lower():
                    # a run's own lock action: unlock (admins may) and delete
                    self.cloud.call("compute", "POST", f"/servers/{resource.id}/action",
                                    json={"unlock": None}, expect=(202,))
                    KINDS["server"].delete(self.cloud.call, resource.id)
                else:
                    raise

        def again(server: dict) -> None:
            # a delete that raced a build can leave the server in ERROR: delete it again
            if server.get("OS-EXT-STS:task_state"):
                return  # the delete is still under way
            self._redelete(resource, server, delete)

        def dropped(server: dict) -> bool:
            # Nova drops a delete whose RPC was lost (a conductor restarted under it): after
            # rpc_response_timeout the compute reverts the task state and the server is ACTIVE
            # again, while every DELETE meanwhile was ignored as "already deleting"
            return "OS-EXT-STS:task_state" in server and not server["OS-EXT-STS:task_state"]

        delete()
        self._wait_gone(resource, lambda: self._show(resource), on_error=again, dropped=dropped)

    # -- server groups (the storm's bursts) -------------------------------------------------
    def find_server_groups(self) -> list[Resource]:
        """Groups named <prefix>-...; Nova pages this list by offset, not marker."""
        found = self._paged("compute", "/os-server-groups", "server_groups",
                            {"all_projects": "True"} if self.all_projects else {}, by_offset=True)
        return [Resource("server group", g["id"], g["name"], g.get("project_id"), g) for g in found
                if self.scope.owns(g.get("name"))]

    # -- images (server snapshots) ---------------------------------------------------------
    def find_images(self) -> list[Resource]:
        """Images named <prefix>-... that the project owns (--all-projects: any project's); never a
        public or community image, whatever its name: others boot from it."""
        params = {} if self.all_projects else {"owner": self.cloud.project_id or ""}
        images = self._paged("image", "/v2/images", "images", params)
        return [Resource("image", i["id"], i["name"], i.get("owner"), i) for i in images
                if self.scope.owns(i.get("name")) and i.get("visibility") not in ("public", "community")
                and (self.all_projects or i.get("owner") == self.cloud.project_id)]

    def delete_image(self, resource: Resource) -> None:
        # Glance deletes at once, even a snapshot still being saved (its server is gone by now);
        # a delayed delete leaves the record in pending_delete: gone for its owner
        KINDS["image"].delete(self.cloud.call, resource.id)
        self._wait_gone(resource, lambda: self._show(resource))

    # -- floating IPs ------------------------------------------------------------------
    def find_floating_ips(self) -> list[Resource]:
        found = self._paged("network", "/v2.0/floatingips", "floatingips", self._own_project_filter())
        ours = []
        for fip in found:
            # Neutron gives floating IPs no name: novastress writes it into the description
            name = fip.get("description") if self.scope.owns(fip.get("description")) else \
                next((tag for tag in fip.get("tags") or [] if self.scope.owns(tag)), None)
            if name:
                ours.append(Resource("floating IP", fip["id"], name, fip.get("project_id"),
                                     {"address": fip.get("floating_ip_address")}))
        return ours

    # -- volumes -----------------------------------------------------------------------
    def _volume_params(self) -> dict[str, str]:
        return {"all_tenants": "1"} if self.all_projects else {}

    def _our_volumes(self) -> list[dict]:
        volumes = self._paged("volume", "/volumes/detail", "volumes", self._volume_params())
        return [v for v in volumes if self.scope.owns(v.get("name")) and v.get("status") != "deleted"]

    def find_attachments(self) -> list[Resource]:
        """Attachments of our volumes: the attached ones the volume lists, and the reservations
        of a volume still reserved or attaching (Cinder's attachments API, 3.27, names their
        server: an attach that raced the server's delete leaves one behind)."""
        found = []
        for volume in self._our_volumes():
            for server_id in volume_held_for(self.cloud.call, volume, self._volume_params()):
                found.append(Resource("volume attachment", volume["id"],
                                      f"{volume['name']} on server {server_id}",
                                      volume.get("os-vol-tenant-attr:tenant_id"),
                                      {"server_id": server_id, "volume": volume}))
        return found

    def delete_attachment(self, resource: Resource) -> None:
        server_id = resource.detail["server_id"]
        server = self.cloud.call("compute", "GET", f"/servers/{server_id}", expect=(200, 404))
        if server.status_code == 200:
            name = server.json()["server"].get("name")
            if not self.scope.owns(name):
                # detaching would change a server the tool did not create
                raise CallFailed(f"attached to server {server_id} ({name}), which is not ours; "
                                 f"detach it by hand")
            self.cloud.call("compute", "DELETE", f"/servers/{server_id}/os-volume_attachments/{resource.id}",
                            expect=(202, 204, 404), retry_on=(409,))
        else:
            # the server is gone but Cinder still records the attachment (a lost detach) or the
            # reservation (an attach that raced the delete): only an admin can reset it
            try:
                reset_volume(self.cloud.call, resource.id)
            except CallFailed as exc:
                if exc.status == 403:
                    raise CallFailed(f"attached to server {server_id}, which no longer exists; an "
                                     f"admin must reset it (rerun with admin credentials)", 403) from None
                raise
        self._wait_gone(resource, lambda: self._attachment_of(resource))

    def _attachment_of(self, resource: Resource) -> dict | None:
        response = self.cloud.call("volume", "GET", f"/volumes/{resource.id}", expect=(200, 404))
        if response.status_code == 404:
            return None
        volume = response.json()["volume"]
        attached = any(a.get("server_id") == resource.detail["server_id"]
                       for a in volume.get("attachments") or [])
        return {"status": volume.get("status")} if attached else None

    def find_snapshots(self) -> list[Resource]:
        volumes = {v["id"] for v in self._our_volumes()}
        snapshots = self._paged("volume", "/snapshots/detail", "snapshots", self._volume_params())
        live = [s for s in snapshots if s.get("status") != "deleted"]
        # a snapshot someone else took of one of our volumes is not ours: the volume stays
        self._foreign_snapshots = {}
        for snapshot in live:
            if snapshot.get("volume_id") in volumes and not self.scope.owns(snapshot.get("name")):
                self._foreign_snapshots.setdefault(snapshot["volume_id"], []).append(snapshot["id"])
        return [Resource("volume snapshot", s["id"], s["name"],
                         s.get("os-extended-snapshot-attributes:project_id"), s)
                for s in live if self.scope.owns(s.get("name"))]

    def delete_snapshot(self, resource: Resource) -> None:
        # 400 while the snapshot is still creating: retried until it settles
        self._delete_and_wait(resource, retry_on=(400,))

    def find_volumes(self) -> list[Resource]:
        return [Resource("volume", v["id"], v["name"], v.get("os-vol-tenant-attr:tenant_id"), v)
                for v in self._our_volumes()]

    def delete_volume(self, resource: Resource) -> None:
        stuck = [reason for attachment, reason in self.results["volume attachments"].failed
                 if attachment is not None and attachment.id == resource.id]
        if stuck:
            # Cinder refuses to delete an in-use volume: retrying the delete cannot help
            raise CallFailed(f"still attached (see its volume attachment): {stuck[0]}")
        foreign = self._foreign_snapshots.get(resource.id)
        if foreign:
            raise CallFailed(f"has snapshot(s) {', '.join(foreign)} not named {self.scope.pattern}...; "
                             f"they are not ours to delete: delete them by hand, then run again")
        # 400 while attaching/detaching or a snapshot is still being deleted: retried
        self._delete_and_wait(resource, retry_on=(400,))

    def _delete_and_wait(self, resource: Resource, retry_on: tuple[int, ...] = ()) -> None:
        """DELETE it, wait until it is gone; one that goes to ERROR is deleted again (bounded)."""
        kind = _kind(resource)
        kind.delete(self.cloud.call, resource.id, retry_on=retry_on)
        self._wait_gone(resource, lambda: self._show(resource), on_error=lambda record: self._redelete(
            resource, record, lambda: kind.delete(self.cloud.call, resource.id, retry_on=retry_on)))

    def _redelete(self, resource: Resource, record: dict, delete: Callable[[], None]) -> None:
        """The resource went to ERROR while deleting: delete it again, a bounded number of times."""
        count = resource.detail.get("redeletes", 0)
        if count >= self.settings.retries:
            fault = (record.get("fault") or {}).get("message")
            raise StillThere(f"went to {record.get('status')} while deleting, {count + 1} deletes "
                             f"tried{': ' + str(fault).splitlines()[0] if fault else ''}")
        resource.detail["redeletes"] = count + 1
        delete()

    # -- keypairs ----------------------------------------------------------------------
    def find_keypairs(self) -> list[Resource]:
        owners: list[str | None] = [None]   # None: the caller's own keypairs
        if self.all_projects:
            owners += [user.id for user in self._isolated_of("user")]
            owners += [user for user in self.keypair_users if user not in owners and user != self.cloud.user_id]
        found = []
        for owner in owners:
            params = {"user_id": owner} if owner else {}
            keypairs = self.cloud.call("compute", "GET", "/os-keypairs", params=params).json()["keypairs"]
            for item in keypairs:
                keypair = item.get("keypair", item)
                if self.scope.owns(keypair.get("name")):
                    found.append(Resource("keypair", keypair["name"], keypair["name"], None,
                                          {"user_id": owner}))
        return found

    def delete_keypair(self, resource: Resource) -> None:
        owner = resource.detail.get("user_id")
        KINDS["keypair"].delete(self.cloud.call, resource.id, params={"user_id": owner} if owner else None)

    # -- security groups ---------------------------------------------------------------
    def find_security_groups(self) -> list[Resource]:
        groups = self._paged("network", "/v2.0/security-groups", "security_groups",
                             self._own_project_filter())
        isolated = {project.id for project in self._isolated_of("project")} if self.all_projects else set()
        # the "default" group Neutron made for one of our isolated projects is ours too:
        # deleting the project in Keystone does not delete it
        return [Resource("security group", g["id"], g.get("name") or "",
                         g.get("project_id"), g) for g in groups
                if self.scope.owns(g.get("name"))
                or (g.get("name") == "default" and g.get("project_id") in isolated)]

    def delete_security_group(self, resource: Resource) -> None:
        # 409 while a port of a server still being deleted uses it: retried
        KINDS["security_group"].delete(self.cloud.call, resource.id, retry_on=(409,))

    # -- isolated projects and users -----------------------------------------------------
    def _isolated_of(self, kind: str) -> list[Resource]:
        """The run's isolated projects or users ("project", "user"): never the caller's own."""
        if kind not in self._isolated:
            own = self.cloud.project_id if kind == "project" else self.cloud.user_id
            listed = self.cloud.call("identity", "GET", f"/v3/{kind}s").json()[f"{kind}s"]
            self._isolated[kind] = [Resource(kind, r["id"], r["name"], r["id"] if kind == "project" else None)
                                    for r in listed if self.scope.owns(r.get("name")) and r["id"] != own]
        return self._isolated[kind]

    def _find_isolated(self, kind: str) -> list[Resource]:
        if not self.all_projects:
            raise Skip(f"isolated {kind}s are cleaned with --all-projects (admin)")
        return self._isolated_of(kind)


def _kind(resource: Resource):
    """The registry's kind of a listed resource ("volume snapshot" -> KINDS["volume_snapshot"])."""
    return KINDS[resource.kind.replace(" ", "_").lower()]


class Skip(Exception):
    """A kind this cleanup does not look at; str() says why."""


class StillThere(Exception):
    """A deleted resource did not disappear in time; str() says in which state."""


def render_table(results: Iterable[KindResult], deleting: bool) -> str:
    """kind | found | deleted | failed, one row per kind, then one line per failure."""
    rows = [("kind", "found", "deleted" if deleting else "deleted (dry run)", "failed")]
    failures: list[str] = []
    for result in results:
        if result.note and not result.found and not result.failed:
            rows.append((result.kind, "-", "-", "-"))
            failures.append(f"  {result.kind}: skipped, {result.note}")
            continue
        rows.append((result.kind, str(len(result.found)), str(len(result.deleted)), str(len(result.failed))))
        for resource, reason in result.failed:
            what = f"{result.kind[:-1]} {resource}" if resource else result.kind
            failures.append(f"  FAILED {what}: {reason}")
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + failures)


# -- entry points: the command line below, and the sweep at the end of a run ---------------
def connect(target: CloudTarget, settings: Settings, auth: Callable[[CloudTarget], Any] | None = None) -> RetryingClient:
    """An authenticated client whose calls share one deadline (`settings.timeout` from now);
    `auth(target)` gives the auth plugin to use (a run's: RunState.auth, its token shared)."""
    cloud = RetryingClient(target, Retry(settings.retries, settings.backoff, settings.max_backoff),
                           time.monotonic() + settings.timeout, auth(target) if auth else None,
                           timeout=settings.request_timeout)
    cloud.authenticate()
    return cloud


@dataclass
class SweepPass:
    """One pass of a run's sweep: which names, where, and what happened kind by kind."""

    scope: Scope
    where: str
    results: dict[str, KindResult]


def sweep_run(member: CloudTarget, scope: Scope, settings: Settings, admin: CloudTarget | None = None,
              every_run: bool = False, out=None, clouds: Clouds | None = None) -> list[SweepPass]:
    """Delete what a run left, every kind in dependency order: the end-of-run sweep.

        passes = sweep_run(target, Scope("ns", "1a2b3c"), Settings(timeout=240), admin=admin_target)
        leaks = [reason for p in passes for r in p.results.values() for _, reason in r.failed]

    With credentials holding the admin role (`admin`, else `member` itself) it looks in every
    project, so the run's isolated projects and users (and their resources) go too; without
    them, in the member's project only. `every_run` adds `<prefix>-` of earlier runs, in the
    member's project only (Tempest's full_clean_stack spoke of the run's own credential).
    Raises CredentialsError when the member credentials do not work. `clouds` (connect_clouds) reuses
    connections made already.
    """
    clouds = clouds or connect_clouds(member, admin, settings)
    cloud, admin_cloud = clouds.member, clouds.admin
    plan: list[tuple[RetryingClient, Scope, bool]] = []
    if admin_cloud is not None:
        plan.append((admin_cloud, scope, True))
    if every_run:
        plan.append((cloud, Scope(scope.prefix), False))
    elif admin_cloud is None:
        plan.append((cloud, scope, False))
    passes = []
    for acting, pass_scope, all_projects in plan:
        results = Cleanup(acting, pass_scope, settings, all_projects=all_projects, delete=True, out=out,
                          keypair_users=[cloud.user_id or ""] if acting is not cloud else ()).run()
        where = "every project" if all_projects else f"project {acting.project_id}"
        passes.append(SweepPass(pass_scope, where, results))
    return passes


@dataclass
class Clouds:
    """The member's cloud and one holding the admin role (the member's own, or the admin
    credentials'); `admin_refused`: admin credentials were given and could not be used."""

    member: RetryingClient
    admin: RetryingClient | None
    admin_refused: bool = False


def connect_clouds(member: CloudTarget, admin: CloudTarget | None, settings: Settings,
                   auth: Callable[[CloudTarget], Any] | None = None) -> Clouds:
    cloud = connect(member, settings, auth)
    if cloud.has_role("admin"):
        return Clouds(cloud, cloud)
    if admin is None or admin.key == member.key:
        return Clouds(cloud, None)
    try:
        candidate = connect(admin, settings, auth)
    except UserError as exc:
        LOG.warning("novastress: the sweep cannot use the admin credentials (%s); it looks in "
                    "project %s only", exc, cloud.project_id)
        return Clouds(cloud, None, admin_refused=True)
    if not candidate.has_role("admin"):
        return Clouds(cloud, None, admin_refused=True)
    return Clouds(cloud, candidate)


def gone_after_all(clouds: Clouds, leaks: Iterable[tuple[str, str]]) -> set[str]:
    """Of `(kind, id)` pairs a user could not delete, the ids the cloud no longer has.

    A delete that failed can still be carried out: Nova answers 500 to a DELETE that raced a
    build and finishes the delete anyway. A leak is something that exists, so each is looked up
    by id (with admin credentials when there are some: an isolated project's server) before it
    is reported. Kinds without a lookup, and lookups that fail, stay leaks; so does everything
    when admin credentials were given but not usable: the member's 404 for another project's
    resource (an isolated tenant's) says nothing.
    """
    leaks = [(kind, resource_id) for kind, resource_id in leaks if kind in KINDS]
    if not leaks or clouds.admin_refused:
        return set()
    acting = clouds.admin or clouds.member
    gone = set()
    for kind, resource_id in leaks:
        try:
            if acting.endpoint(KINDS[kind].service) is None:
                continue
            if KINDS[kind].show(acting.call, resource_id) is None:
                gone.add(resource_id)
        except CallFailed as exc:
            LOG.warning("novastress: could not look up %s %s: %s", kind, resource_id, exc)
    return gone


# -- command line -------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novastress-cleanup",
        description="Delete what novastress runs left behind: only resources named <prefix>-... "
                    "(one run: <prefix>-<run id>-...). Lists by default; --yes deletes.")
    cloud = parser.add_argument_group(novastress_options.CLOUD)
    _add(cloud, novastress_options.CLOUD_OPTIONS)
    scope = parser.add_argument_group("What to clean")
    _add(scope, [novastress_options.ALL["prefix"]])
    scope.add_argument("--run-id", default=None,
                       help="only this run's resources (<prefix>-<run id>-...); default: every run")
    scope.add_argument("--all-projects", action="store_true",
                       help="look in every project (admin): servers, images, volumes, floating IPs "
                            "server groups and security groups of all projects, isolated projects and users")
    scope.add_argument("--yes", action="store_true", help="delete; without it the cleanup only lists")
    how = parser.add_argument_group("How hard to try")
    defaults = Settings()
    how.add_argument("--retries", type=_at_least(int, 0, strict=False), default=defaults.retries,
                     help=f"retries of a failing call, with exponential backoff (default {defaults.retries})")
    how.add_argument("--concurrency", type=_at_least(int, 0, strict=True), default=defaults.concurrency,
                     help=f"deletions in flight at once per kind (default {defaults.concurrency})")
    how.add_argument("--timeout", type=_at_least(float, 0, strict=True), default=defaults.timeout,
                     help=f"seconds the whole cleanup may take (default {defaults.timeout:g})")
    how.add_argument("--request-timeout", type=_at_least(float, 0, strict=True), default=defaults.request_timeout,
                     help=f"seconds one API call may take (default {defaults.request_timeout:g})")
    how.add_argument("--poll-interval", type=_at_least(float, 0, strict=True), default=defaults.interval,
                     help=f"seconds between 'is it gone yet?' checks (default {defaults.interval:g})")
    return parser


def _add(group, opts) -> None:
    for opt in opts:
        group.add_argument(opt.flag, **novastress_options.argument_kwargs(opt))


def _at_least(kind, minimum, strict: bool):
    def convert(text: str):
        value = kind(text)
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'greater than' if strict else 'at least'} "
                                             f"{minimum}, got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


def main(argv: list[str] | None = None) -> int:
    """`novastress-cleanup`: 0 all done (or listed), 1 something could not be deleted, 2 bad input."""
    parser = build_parser()
    parser.error = lambda message: _fail(f"{message} (see --help)")  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        scope = Scope(args.prefix, args.run_id)
        target = resolve(args)
        if target is None:
            raise CleanupError("no cloud configured: set --os-cloud/OS_CLOUD, OS_* variables, "
                               "--os-auth-url and friends, or --tempest-conf")
        settings = Settings(retries=args.retries, interval=args.poll_interval, timeout=args.timeout,
                            request_timeout=args.request_timeout, concurrency=args.concurrency)
        cloud = connect(target, settings)
    except UserError as exc:
        _fail(str(exc))
    where = "every project" if args.all_projects else f"project {cloud.project_id}"
    print(f"novastress-cleanup: {'deleting' if args.yes else 'listing'} resources named "
          f"{scope.pattern}* in {where} of {target.who}", flush=True)
    results = Cleanup(cloud, scope, settings, all_projects=args.all_projects, delete=args.yes).run()
    print(render_table(results.values(), args.yes), flush=True)
    failed = sum(len(r.failed) for r in results.values())
    found = sum(len(r.found) for r in results.values())
    if failed:
        print(f"novastress-cleanup: {failed} could not be {'deleted' if args.yes else 'listed'}; "
              f"see FAILED above, fix and run again", file=sys.stderr, flush=True)
        return 1
    if not args.yes and found:
        print(f"novastress-cleanup: dry run, nothing deleted; add --yes to delete these {found}",
              flush=True)
    return 0


def _fail(message: str) -> NoReturn:
    exit_with("novastress-cleanup", message)


if __name__ == "__main__":
    sys.exit(main())
