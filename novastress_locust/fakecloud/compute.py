"""Nova compute API v2.1 (microversions 2.1-2.104) of the embedded cloud.

Servers live in one dict keyed by id (plus a per-project index), so showing
one server costs a dict lookup and a plain-dict view whatever the number of
servers. State changes run later on gevent timers (`cloud.later`), as the
conductor, scheduler and compute services of a real cloud would, and write
their log lines with the context of the API call that caused them.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
import time
import uuid
from collections import OrderedDict
from itertools import chain, islice
from dataclasses import dataclass, field

import gevent

from .config import Delays, flavor_table
from .http import Response
from .image_proxy import ImageProxy, checked_metadata
from .logs import LogContext, ServiceLog
from .quota_classes import QuotaClasses
from .server_extras import ServerExtras
from .server_fields import checked_common, checked_counts, checked_name, checked_personality, checked_update
from .server_metadata import ServerMetadata
from .server_tags import ServerTags, checked_tags
from .service import NOVA_ERROR_TYPE, ApiError, Call, Service, now_iso, parse_time, webob_error

MIN_MINOR = 1
# what POST /servers accepts in its `server` object, at any microversion
SERVER_CREATE_FIELDS = frozenset({
    "name", "imageRef", "flavorRef", "adminPass", "metadata", "networks", "OS-DCF:diskConfig", "accessIPv4",
    "accessIPv6", "personality", "key_name", "security_groups", "user_data", "availability_zone",
    "block_device_mapping", "block_device_mapping_v2", "config_drive", "min_count", "max_count",
    "return_reservation_id", "description", "tags", "trusted_image_certificates", "host",
    "hypervisor_hostname", "hostname"})
# attributes GET shows that PUT /servers/{id} and rebuild answer without before 2.75
SHOW_ONLY_PREFIXES = ("OS-EXT-AZ:", "OS-EXT-STS:", "OS-SRV-USG:", "os-extended-volumes:")
VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")
LEGACY_VERSION = {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
                  "updated": "2025-07-04T12:00:00Z"}
# Nova's routes take an optional project id after the version: /v2.1/{project_id}/servers
PROJECT_IN_URL = re.compile(r"^/v2\.1/([0-9a-f]{32})(?=/)")
VARY = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"
VERSION_UPDATED = "2013-07-23T11:33:21Z"
MAX_LIMIT = 1000
DELETED_KEPT = 5000  # deleted servers remembered for changes-since
RACE_WINDOW = 0.1  # seconds between two boots that makes their scheduling race
# seconds between two accepted state changes of one server that puts the second inside the
# first's check-then-save window (both read task_state None, the second's save then fails)
STATE_RACE_WINDOW = 0.05
# seconds (at delay scale 1) between runs of compute's update_available_resource periodic task,
# which heals allocations left behind by deleted instances (Nova's default interval)
HEAL_INTERVAL = 60.0
FROZEN_RECHECK = 0.25  # seconds between looks at a server held by a chaos freeze rule
# seconds nova-api spends between its quota check and creating the build request (image and
# network checks): boots arriving meanwhile check against the same usage, so all may pass
QUOTA_CHECK_WINDOW = 0.2
FAULT_KINDS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 405: "badMethod",
               409: "conflictingRequest", 413: "overLimit", 415: "badMediaType",
               429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}
# Nova's status for (vm_state, task_state); the vm_state's default when the task has no entry
STATUS = {
    "active": ("ACTIVE", {"rebooting": "REBOOT", "reboot_pending": "REBOOT",
                          "reboot_started": "REBOOT", "rebooting_hard": "HARD_REBOOT",
                          "reboot_pending_hard": "HARD_REBOOT",
                          "reboot_started_hard": "HARD_REBOOT", "rebuilding": "REBUILD",
                          "rebuild_spawning": "REBUILD", "migrating": "MIGRATING",
                          "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
                          "resize_migrated": "RESIZE", "resize_finish": "RESIZE"}),
    "building": ("BUILD", {}),
    "stopped": ("SHUTOFF", {"resize_prep": "RESIZE", "resize_migrating": "RESIZE",
                            "resize_migrated": "RESIZE", "resize_finish": "RESIZE",
                            "rebuilding": "REBUILD", "rebuild_spawning": "REBUILD"}),
    "resized": ("VERIFY_RESIZE", {"resize_reverting": "REVERT_RESIZE"}),
    "paused": ("PAUSED", {"migrating": "MIGRATING"}),
    "suspended": ("SUSPENDED", {}),
    "rescued": ("RESCUE", {}),
    "error": ("ERROR", {"rebuilding": "REBUILD"}),
    "deleted": ("DELETED", {}),
    "soft-delete": ("SOFT_DELETED", {}),
    "shelved": ("SHELVED", {}),
    "shelved_offloaded": ("SHELVED_OFFLOADED", {}),
}
PROGRESS_STATUSES = {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}
NOVA_PY = "/opt/stack/venv/lib/python3.11/site-packages/nova"
MSG_PY = "/opt/stack/venv/lib/python3.11/site-packages/oslo_messaging"
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


@dataclass
class Flavor:
    id: str
    name: str
    ram: int
    vcpus: int
    disk: int
    internal_id: int
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    description: str | None = None
    extra_specs: dict = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, int]:
        return {"VCPU": self.vcpus, "MEMORY_MB": self.ram, "DISK_GB": self.disk}


@dataclass
class InstanceAction:
    action: str
    request_id: str
    user_id: str
    project_id: str
    start_time: float
    updated_at: float
    message: str | None = None
    events: list[dict] = field(default_factory=list)


@dataclass
class Migration:
    id: int
    uuid: str
    instance_uuid: str
    source_compute: str
    dest_compute: str
    old_flavor: Flavor
    new_flavor: Flavor
    user_id: str
    project_id: str
    created_at: float
    updated_at: float
    status: str = "migrating"
    request_ids: list[str] = field(default_factory=list)   # the resize's


@dataclass
class Keypair:
    id: int
    name: str
    user_id: str
    public_key: str
    fingerprint: str
    type: str
    created_at: float


@dataclass
class ServerGroup:
    id: str
    name: str
    policy: str
    project_id: str
    user_id: str
    rules: dict = field(default_factory=dict)
    members: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    flavor: Flavor
    image_id: str
    context: LogContext          # the boot's log context: later build lines carry it
    boot_ids: list[str]
    created: float
    internal_id: int
    reservation_id: str
    updated: float = 0.0
    vm_state: str = "building"
    task_state: str | None = "scheduling"
    power_state: int = 0
    host: str | None = None
    host_id: str = ""
    launched_at: float | None = None
    handed_to_compute: float | None = None   # the conductor handed its build to the host's compute
    terminated_at: float | None = None
    key_name: str | None = None
    metadata: dict = field(default_factory=dict)
    description: str | None = None
    locked: bool = False
    locked_reason: str | None = None
    locked_by: str | None = None
    fault: dict | None = None
    ports: list[dict] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    networks: object = None      # requested networks: None, "none", "auto" or [network ids]
    volumes: dict = field(default_factory=dict)     # volume id -> attachment record
    attaching: dict = field(default_factory=dict)   # volume id -> (LogContext, ids) in flight
    leaked_volumes: set = field(default_factory=set)
    actions: list[InstanceAction] = field(default_factory=list)
    server_groups: list[str] = field(default_factory=list)
    scheduler_hints: dict = field(default_factory=dict)
    availability_zone: str | None = None
    config_drive: str = ""
    tags: list[str] = field(default_factory=list)
    # what the API's sub-resources keep in Nova's system metadata (os-server-password's chunks),
    # which a snapshot's image properties carry on
    system_metadata: dict = field(default_factory=dict)
    access_ipv4: str = ""
    access_ipv6: str = ""
    disk_config: str = "MANUAL"
    user_data: str | None = None         # as the boot (or a 2.57+ rebuild) gave it, base64
    hostname: str | None = None          # set by an update (2.90+); else the name, as Nova sanitises it
    epoch: int = 0               # bumped to cancel the pending transition
    scheduled_at: float = 0.0
    old_flavor: Flavor | None = None
    old_host: str | None = None
    migration: Migration | None = None
    lost_delete: tuple | None = None   # (LogContext, ids, action) of a DELETE the build will trip over
    leak_context: tuple | None = None  # (LogContext, ids) of the DELETE that leaves volumes attached
    delete_started: float = 0.0
    delete_context: LogContext | None = None   # the delete in flight
    delete_dropped: tuple | None = None  # (LogContext, ids) of a delete whose RPC a dying conductor lost
    deleted: bool = False
    # lost a delete-during-build race: its compute thinks the instance never spawned and
    # skips the allocation cleanup when it is finally deleted (Nova bug 1679750's shape)
    allocations_leak: bool = False
    # (accepted monotonic time, LogContext, ids, task_state, action, InstanceAction) of the latest
    # state-changing action: what state-change-race and delete-preempts-action look at
    last_change: tuple | None = None
    preempted: tuple | None = None       # (last_change, delete ids): the action a DELETE cut short
    unshelve_race: tuple | None = None   # (last_change, delete ids): the unshelve a DELETE raced
    snapshot: tuple | None = None        # (image id, LogContext, ids, started) of a createImage in flight
    shelved_image: tuple | None = None   # (image id, ids) of the `<name>-shelved` image a shelve made
    boot_count: int = 1                  # servers its POST asked for: what the quota re-check reports

    def __post_init__(self) -> None:
        self.updated = self.updated or self.created
        self.created_iso = now_iso(self.created)
        self.updated_iso = now_iso(self.updated)

    def touch(self) -> None:
        self.updated = time.time()
        self.updated_iso = now_iso(self.updated)

    @property
    def status(self) -> str:
        default, by_task = STATUS.get(self.vm_state, ("UNKNOWN", {}))
        return by_task.get(self.task_state, default) if self.task_state else default


@dataclass(frozen=True)
class ActionRule:
    """One state-changing server action: where it may start, what it goes through."""

    name: str                  # the name Nova's 409 message uses
    vm_states: tuple[str, ...]
    task_state: str
    end_vm_state: str
    end_power_state: int
    event: str
    instance_action: str


ACTIONS = {
    "os-stop": ActionRule("stop", ("active", "error"), "powering-off", "stopped", 4,
                          "compute_stop_instance", "stop"),
    "os-start": ActionRule("start", ("stopped",), "powering-on", "active", 1,
                           "compute_start_instance", "start"),
    "pause": ActionRule("pause", ("active",), "pausing", "paused", 1,
                        "compute_pause_instance", "pause"),
    "unpause": ActionRule("unpause", ("paused",), "unpausing", "active", 1,
                          "compute_unpause_instance", "unpause"),
    "suspend": ActionRule("suspend", ("active",), "suspending", "suspended", 1,
                          "compute_suspend_instance", "suspend"),
    "resume": ActionRule("resume", ("suspended",), "resuming", "active", 1,
                         "compute_resume_instance", "resume"),
    "shelve": ActionRule("shelve", ("active", "stopped", "paused", "suspended"), "shelving",
                         "shelved_offloaded", 4, "compute_shelve_instance", "shelve"),
    "rescue": ActionRule("rescue", ("active", "stopped", "error"), "rescuing", "rescued", 1,
                         "compute_rescue_instance", "rescue"),
    "unrescue": ActionRule("unrescue", ("rescued",), "unrescuing", "active", 1,
                           "compute_unrescue_instance", "unrescue"),
}
# what Nova's fake virt driver prints as a guest's console (get_console_output)
CONSOLE = ["FAKE CONSOLE OUTPUT", "ANOTHER", "LAST LINE"]


def _frames(*frames: tuple[str, int, str, str]) -> list[str]:
    lines = []
    for path, line, function, source in frames:
        lines.append(f'  File "{path}", line {line}, in {function}')
        lines.append(f"    {source}")
    return lines


SAVE_FRAMES = [
    ("/opt/stack/venv/lib/python3.11/site-packages/oslo_versionedobjects/base.py", 226, "wrapper",
     "return fn(self, *args, **kwargs)"),
    (f"{NOVA_PY}/objects/instance.py", 880, "save", "old_ref, inst_ref = db.instance_update_and_get_original("),
    (f"{NOVA_PY}/db/utils.py", 35, "wrapper", "return f(*args, **kwargs)"),
    (f"{NOVA_PY}/db/main/api.py", 2327, "instance_update_and_get_original",
     "return (copy.copy(instance_ref), _instance_update("),
    (f"{NOVA_PY}/db/main/api.py", 2466, "_instance_update", "raise exc(**exc_props)")]
SPAWN_FRAMES = _frames(
    (f"{NOVA_PY}/compute/manager.py", 2706, "_build_and_run_instance",
     "instance.save(expected_task_state=task_states.SPAWNING)"), *SAVE_FRAMES)
# an RPC call on its way through oslo.messaging
RPC_CALL = (
    (f"{MSG_PY}/rpc/client.py", 194, "call", "result = self.transport._send("),
    (f"{MSG_PY}/transport.py", 123, "_send", "return self._driver.send(target, ctxt, message,"),
    (f"{MSG_PY}/_drivers/amqpdriver.py", 824, "send",
     "return self._send(target, ctxt, message, wait_for_reply, timeout,"))
# an RPC call to a conductor that died under it, as nova-compute logged it on Nova 34
MESSAGING_TIMEOUT_FRAMES = _frames(
    (f"{NOVA_PY}/conductor/rpcapi.py", 247, "object_action",
     "return cctxt.call(context, 'object_action', objinst=objinst,"), *RPC_CALL,
    (f"{MSG_PY}/_drivers/amqpdriver.py", 813, "_send", "result = self._waiter.wait(msg_id, timeout,"),
    (f"{MSG_PY}/_drivers/amqpdriver.py", 684, "wait", "message = self.waiters.get(msg_id, timeout=timeout)"),
    (f"{MSG_PY}/_drivers/amqpdriver.py", 550, "get", "raise oslo_messaging.MessagingTimeout("))
REMOTE_SCHEDULE_FRAMES = [
    (f"{MSG_PY}/rpc/server.py", 274, "inner", "return func(*args, **kwargs)"),
    (f"{NOVA_PY}/scheduler/manager.py", 297, "select_destinations",
     "selections = self._select_destinations("),
    (f"{NOVA_PY}/scheduler/manager.py", 324, "_select_destinations", "selections = self._schedule("),
    (f"{NOVA_PY}/scheduler/manager.py", 525, "_schedule", "self._ensure_sufficient_hosts("),
    (f"{NOVA_PY}/scheduler/manager.py", 572, "_ensure_sufficient_hosts",
     "raise exception.NoValidHost(reason=reason)")]
CONDUCTOR_FRAMES = _frames(
    (f"{NOVA_PY}/conductor/manager.py", 1683, "schedule_and_build_instances",
     "host_lists = self._schedule_instances(context, request_specs[0],"),
    (f"{NOVA_PY}/conductor/manager.py", 971, "_schedule_instances",
     "host_lists = self.query_client.select_destinations("),
    (f"{NOVA_PY}/scheduler/client/query.py", 41, "select_destinations",
     "return self.scheduler_rpcapi.select_destinations(context, spec_obj,"),
    (f"{NOVA_PY}/scheduler/rpcapi.py", 160, "select_destinations",
     "return cctxt.call(ctxt, 'select_destinations', **msg_args)"), *RPC_CALL,
    (f"{MSG_PY}/_drivers/amqpdriver.py", 816, "_send", "raise result"))
ATTACH_FRAMES = _frames(
    (f"{NOVA_PY}/compute/manager.py", 7781, "_attach_volume",
     "bdm.attach(context, instance, self.volume_api, self.driver,"),
    (f"{NOVA_PY}/virt/block_device.py", 46, "wrapped", "ret_val = method(obj, context, *args, **kwargs)"),
    (f"{NOVA_PY}/virt/block_device.py", 672, "attach", "self._do_attach(context, instance, volume,"),
    (f"{NOVA_PY}/virt/block_device.py", 657, "_do_attach", "instance.refresh()"),
    (f"{NOVA_PY}/objects/instance.py", 1003, "refresh",
     "current = self.__class__.get_by_uuid(context, uuid=self.uuid,"),
    (f"{NOVA_PY}/db/main/api.py", 1364, "_instance_get_by_uuid",
     "raise exception.InstanceNotFound(instance_id=uuid)"))


# instance action -> (API controller module, compute API method)
API_ACTIONS = {"reboot": ("servers.py", "reboot"), "stop": ("servers.py", "stop"), "start": ("servers.py", "start"),
               "pause": ("pause_server.py", "pause"), "unpause": ("pause_server.py", "unpause"),
               "suspend": ("suspend_server.py", "suspend"), "resume": ("suspend_server.py", "resume"),
               "shelve": ("shelve.py", "shelve"), "unshelve": ("shelve.py", "unshelve"),
               "rebuild": ("servers.py", "rebuild"), "resize": ("servers.py", "resize"),
               "confirmResize": ("servers.py", "confirm_resize"), "revertResize": ("servers.py", "revert_resize"),
               "os-stop": ("servers.py", "stop"), "os-start": ("servers.py", "start"),
               "confirm_resize": ("servers.py", "confirm_resize"), "revert_resize": ("servers.py", "revert_resize"),
               "createImage": ("servers.py", "snapshot")}
# instance action -> compute manager method its RPC lands in
MANAGER_ACTIONS = {"reboot": "reboot_instance", "stop": "stop_instance", "start": "start_instance",
                   "pause": "pause_instance", "unpause": "unpause_instance", "suspend": "suspend_instance",
                   "resume": "resume_instance", "shelve": "shelve_instance", "rebuild": "rebuild_instance",
                   "resize": "resize_instance", "revertResize": "revert_resize", "confirmResize": "confirm_resize",
                   "createImage": "snapshot_instance"}
EXCUTILS_PY = "/opt/stack/venv/lib/python3.11/site-packages/oslo_utils/excutils.py"
# an exception escaping an RPC cast: oslo.messaging logs it under this traceback head
RPC_DISPATCH_FRAMES = [
    (f"{MSG_PY}/rpc/server.py", 176, "_process_incoming", "res = self.dispatcher.dispatch(message)"),
    (f"{MSG_PY}/rpc/dispatcher.py", 309, "dispatch", "return self._do_dispatch(endpoint, method, ctxt, args)"),
    (f"{MSG_PY}/rpc/dispatcher.py", 229, "_do_dispatch", "result = func(ctxt, **new_args)")]
# schedule_and_build_instances re-raising the conductor's quota re-check (TooManyInstances)
QUOTA_RECHECK_FRAMES = _frames(
    *RPC_DISPATCH_FRAMES,
    (f"{NOVA_PY}/conductor/manager.py", 1774, "schedule_and_build_instances",
     "with excutils.save_and_reraise_exception():"),
    (EXCUTILS_PY, 260, "__exit__", "self.force_reraise()"),
    (EXCUTILS_PY, 226, "force_reraise", "raise self.value"),
    (f"{NOVA_PY}/conductor/manager.py", 1768, "schedule_and_build_instances",
     "self._recheck_quota(context, instance.flavor, request_specs[0],"),
    (f"{NOVA_PY}/conductor/manager.py", 1025, "_recheck_quota", "compute_utils.check_num_instances_quota("),
    (f"{NOVA_PY}/compute/utils.py", 1181, "check_num_instances_quota",
     "raise exception.TooManyInstances(overs=overs,"))
# vm_states Nova's compute API takes a snapshot (createImage) in
SNAPSHOT_VM_STATES = ("active", "stopped", "paused", "suspended")


def _remote_traceback(frames: list[tuple[str, int, str, str]], final: str) -> str:
    """oslo.messaging's remote traceback: frames separated by blank lines."""
    parts = ["Traceback (most recent call last):", ""]
    for path, line, function, source in frames:
        parts += [f'  File "{path}", line {line}, in {function}', f"    {source}", ""]
    parts.append(final)
    return "\n".join(parts)


def _fingerprint(public_key: str) -> str:
    """MD5 of the key blob in colon hex, as Nova computes it; ValueError if the key does not load
    as an OpenSSH public key (a malformed or oversized one, as Nova's check with cryptography)."""
    from cryptography.hazmat.primitives import serialization
    parts = public_key.strip().split()
    if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
        raise ValueError("not an OpenSSH public key")
    try:
        serialization.load_ssh_public_key(public_key.encode())
    except Exception as exc:   # cryptography raises ValueError or UnsupportedAlgorithm
        raise ValueError(str(exc)) from None
    blob = base64.b64decode(parts[1].encode(), validate=True)
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def _generate_keypair() -> tuple[str, str]:
    """(private PEM, OpenSSH public key) of a new RSA key, as Nova generates them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"


class Compute(Service):
    name = "compute"
    prefix = "/compute"
    log_name = "nova-api"

    def setup(self) -> None:
        self.servers: dict[str, Server] = {}
        self.by_project: dict[str, dict[str, Server]] = {}
        self.deleted: OrderedDict[str, Server] = OrderedDict()
        self.flavors: dict[str, Flavor] = {}
        self.keypairs: dict[str, dict[str, Keypair]] = {}
        self.server_groups: dict[str, ServerGroup] = {}
        self.migrations: list[Migration] = []
        self.quotas: dict[str, dict[str, int]] = {}
        self.default_quotas: dict[str, int] = {}     # the "default" quota class, as an admin set it
        # counters Nova keeps per project; quota-usage-drift can leave them off by one
        self.usage: dict[str, dict[str, int]] = {}
        self.host_usage: dict[str, dict[str, int]] = {}
        self.scheduling: dict[str, float] = {}   # server id -> time its boot was accepted
        self.last_create: dict[str, tuple[float, list[str]]] = {}  # project -> (time, ids) of its latest boot
        self._counter = 0x100
        self._keypair_counter = 0
        self._migration_counter = 0
        self._started = time.time()
        for flavor_id, name, ram, vcpus, disk in flavor_table(self.cloud.config.flavors):
            self._add_flavor(flavor_id, name, ram, vcpus, disk)
        self._routes()

    def _routes(self) -> None:
        add = self.router.add
        # the hot paths first: matching is a linear scan
        add("GET", "/v2.1/servers/detail", self.list_servers_detail)
        add("GET", "/v2.1/servers/{server_id}", self.show_server)
        add("GET", "/v2.1/servers", self.list_servers)
        add("POST", "/v2.1/servers", self.create_server)
        add("DELETE", "/v2.1/servers/{server_id}", self.delete_server)
        add("POST", "/v2.1/servers/{server_id}/action", self.server_action)
        add("PUT", "/v2.1/servers/{server_id}", self.update_server)
        add("GET", "/v2.1/", self.version, auth=False)
        add("GET", "/v2.1/flavors", self.list_flavors)
        add("GET", "/v2.1/flavors/detail", self.list_flavors_detail)
        add("POST", "/v2.1/flavors", self.create_flavor)
        add("GET", "/v2.1/flavors/{flavor_id}", self.show_flavor)
        add("DELETE", "/v2.1/flavors/{flavor_id}", self.delete_flavor)
        add("GET", "/v2.1/flavors/{flavor_id}/os-extra_specs", self.flavor_extra_specs)
        add("GET", "/v2.1/servers/{server_id}/os-volume_attachments", self.list_attachments)
        add("POST", "/v2.1/servers/{server_id}/os-volume_attachments", self.attach_volume)
        add("GET", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", self.show_attachment)
        add("DELETE", "/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}", self.detach_volume)
        add("GET", "/v2.1/servers/{server_id}/os-instance-actions", self.list_instance_actions)
        add("GET", "/v2.1/servers/{server_id}/os-instance-actions/{request_id}", self.show_instance_action)
        add("GET", "/v2.1/os-keypairs", self.list_keypairs)
        add("POST", "/v2.1/os-keypairs", self.create_keypair)
        add("GET", "/v2.1/os-keypairs/{name}", self.show_keypair)
        add("DELETE", "/v2.1/os-keypairs/{name}", self.delete_keypair)
        add("GET", "/v2.1/os-services", self.list_services)
        add("GET", "/v2.1/os-hypervisors", self.list_hypervisors)
        add("GET", "/v2.1/os-hypervisors/detail", self.list_hypervisors_detail)
        add("GET", "/v2.1/os-hypervisors/{hypervisor_id}", self.show_hypervisor)
        add("GET", "/v2.1/limits", self.limits)
        add("GET", "/v2.1/os-quota-sets/{project_id}", self.show_quotas)
        add("GET", "/v2.1/os-quota-sets/{project_id}/detail", self.show_quotas_detail)
        add("GET", "/v2.1/os-quota-sets/{project_id}/defaults", self.show_quota_defaults)
        add("PUT", "/v2.1/os-quota-sets/{project_id}", self.update_quotas)
        add("DELETE", "/v2.1/os-quota-sets/{project_id}", self.delete_quotas)
        QuotaClasses(self).add_routes(add)     # /os-quota-class-sets/{class}
        add("GET", "/v2.1/os-migrations", self.list_migrations)
        add("GET", "/v2.1/os-server-groups", self.list_server_groups)
        add("POST", "/v2.1/os-server-groups", self.create_server_group)
        add("GET", "/v2.1/os-server-groups/{group_id}", self.show_server_group)
        add("DELETE", "/v2.1/os-server-groups/{group_id}", self.delete_server_group)
        add("GET", "/v2.1/os-availability-zone", self.availability_zones)
        ImageProxy(self).add_routes(add)   # /images and /images/{id}/metadata, up to 2.35 / 2.38
        ServerMetadata(self).add_routes(add)   # /servers/{id}/metadata[/{key}]
        ServerTags(self).add_routes(add)       # /servers/{id}/tags[/{tag}], 2.26+
        ServerExtras(self).add_routes(add)     # /servers/{id}/ips[/{network}], /servers/{id}/os-server-password

    # -- request flow ------------------------------------------------------
    def dispatch(self, call: Call, path: str) -> Response:
        if path in ("", "/"):  # the root versions document: no auth, no microversion
            return self.versions(call)
        if path == "/v2" or path.startswith("/v2/"):
            # the deprecated v2.0: v2.1's API without microversions, and without their headers
            call.legacy, path = True, "/v2.1" + path[len("/v2"):]
        found = PROJECT_IN_URL.match(path)
        if found:
            call.url_project, path = found.group(1), "/v2.1" + path[found.end():]
        if call.legacy and path in ("/v2.1", "/v2.1/"):
            return self.legacy_version(call)
        return super().dispatch(call, path)

    def before(self, call: Call) -> None:
        if call.url_project and call.token and call.url_project != call.token.project_id:
            raise ApiError(400, f"Malformed request URL: URL's project_id '{call.url_project}' doesn't "
                                f"match Context's project_id '{call.token.project_id}'")
        if call.legacy:
            call.microversion = "2.1"
            return
        headers = call.request.headers
        requested = None
        combined = headers.get("openstack-api-version")
        if combined:
            for part in combined.split(","):
                service, _, value = part.strip().partition(" ")
                if service.lower() == "compute":
                    requested = value.strip()
        if requested is None:
            requested = headers.get("x-openstack-nova-api-version")
        if not requested:
            call.microversion = "2.1"
            return
        ceiling = self.cloud.config.max_microversion_minor
        if requested.lower() == "latest":
            call.microversion = f"2.{ceiling}"
            return
        found = VERSION_RE.match(requested)
        if not found:
            raise ApiError(400, f"API Version String {requested} is of invalid format. Must be of "
                                "format MajorNum.MinorNum.", "badversion")
        call.microversion = requested
        major, minor = int(found.group(1)), int(found.group(2))
        if major != 2 or not MIN_MINOR <= minor <= ceiling:
            raise ApiError(406, f"Version {requested} is not supported by the API. Minimum is 2.1 "
                                f"and maximum is 2.{ceiling}.", "compute")

    def decorate(self, call: Call, response: Response) -> None:
        # the root document, a 401 and a malformed version answer without these (as recorded)
        if call.microversion is None:
            return
        if call.legacy:
            response.headers += [("x-openstack-request-id", call.request_id),
                                 ("x-compute-request-id", call.request_id)]
            return
        version = call.microversion
        response.headers += [("OpenStack-API-Version", f"compute {version}"),
                             ("X-OpenStack-Nova-API-Version", version), ("Vary", VARY),
                             ("x-openstack-request-id", call.request_id),
                             ("x-compute-request-id", call.request_id)]

    def error(self, call: Call, error: ApiError) -> Response:
        if error.status == 401:  # keystonemiddleware answers before Nova sees the call
            return Response.json(401, {"error": {"code": 401, "title": "Unauthorized",
                                                 "message": error.message}}, error.headers)
        if error.kind == "notallowed":
            # Nova routes on path and method together: a method a path lacks matches no route, and
            # its router answers with webob's own 404, before any controller or microversion
            return webob_error(call.request.header("accept"), 404, "The resource could not be found.", error.headers)
        message = "Malformed request body" if error.kind == "malformed" else error.message
        if error.status == 404 and error.kind == "notfound":
            message = "The resource could not be found."
        if 400 <= error.status < 500:
            self.log(call, "INFO", "nova.api.openstack.wsgi", f"HTTP exception thrown: {message}")
        kind = FAULT_KINDS.get(error.status, "computeFault")
        return Response.json(error.status, {kind: {"code": error.status, "message": message}},
                             error.headers, content_type=NOVA_ERROR_TYPE)

    def finished(self, call: Call, response: Response) -> None:
        request = call.request
        uri = request.target[len(self.prefix):] or "/"
        elapsed = time.monotonic() - call.started
        self.cloud.logs.api.write(
            "INFO", "nova.api.openstack.requestlog",
            f'{request.remote_addr} "{request.method} {uri}" status: {response.status} '
            f"len: {len(response.body)} microversion: {call.microversion or '-'} time: {elapsed:.6f}",
            call.log_context)

    # -- helpers -------------------------------------------------------------
    @staticmethod
    def _minor(call: Call) -> int:
        return int(call.microversion.partition(".")[2]) if call.microversion else 1

    @staticmethod
    def _admin(call: Call) -> bool:
        return bool(call.token and call.token.is_admin)

    def _policy(self, call: Call, rule: str) -> None:
        if not self._admin(call):
            raise ApiError(403, f"Policy doesn't allow {rule} to be performed.")

    @property
    def _base(self) -> str:
        return self.cloud.base_url + self.prefix

    def _links(self, kind: str, item_id: str) -> list[dict]:
        base = self._base
        return [{"rel": "self", "href": f"{base}/v2.1/{kind}/{item_id}"},
                {"rel": "bookmark", "href": f"{base}/{kind}/{item_id}"}]

    def _body(self, call: Call, key: str, payload=None) -> dict:
        payload = call.body() if payload is None else payload
        if not isinstance(payload, dict) or key not in payload:
            raise ApiError(400, f"'{key}' is a required property")
        value = payload[key]
        if not isinstance(value, dict):
            raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value!r}. "
                                f"{value!r} is not of type 'object'")
        return value

    def _server(self, call: Call, server_id: str) -> Server:
        server = self.servers.get(server_id)
        if server is None or (server.project_id != call.token.project_id and not self._admin(call)):
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return server

    def _after(self, server: Server, seconds: float, step, *args) -> None:
        """Run a transition later unless a newer one (delete, another action) replaced it."""
        epoch = server.epoch

        def run() -> None:
            if server.epoch == epoch and not server.deleted:
                if self.cloud.chaos.frozen("compute", server.id, server.name) or self.cloud.processes.holds(server):
                    # held by a chaos freeze rule, or waiting for a service that is down or frozen
                    # (processes.py): look again later (a delete bumps the epoch)
                    self.cloud.later(FROZEN_RECHECK, run)
                    return
                step(*args)
                self._guest_sync(server)  # every build step and action ends here
        self.cloud.later(seconds, run)

    def _guest_sync(self, server: Server) -> None:
        """Let the simulated guest follow the server: SSH on its floating IPs, its disks."""
        guests = getattr(self.cloud, "guests", None)
        if guests is not None:
            guests.sync(server.id)

    def _record_action(self, call: Call, server: Server, action: str) -> InstanceAction:
        now = time.time()
        record = InstanceAction(action, call.request_id, call.token.user_id, call.token.project_id,
                                now, now)
        server.actions.append(record)
        return record

    @staticmethod
    def _event(record: InstanceAction, event: str, host: str | None, result: str = "Success",
               traceback: str | None = None, details: str | None = None, start: float | None = None) -> None:
        """An event of the action, finished now; it started with the action unless `start` says when."""
        now = time.time()
        record.events.append({"event": event, "start_time": start or record.start_time, "finish_time": now,
                              "result": result, "host": host, "traceback": traceback,
                              "details": details})
        record.updated_at = now
        if result != "Success":
            record.message = "Error"

    def _compute_log(self, host: str | None) -> ServiceLog:
        return self.cloud.logs.compute(host or self.cloud.compute_hosts[0])

    def _host_id(self, project_id: str, host: str | None) -> str:
        return hashlib.sha224((project_id + host).encode()).hexdigest() if host else ""

    # -- versions ----------------------------------------------------------
    def _version_doc(self, full: bool) -> dict:
        doc = {"id": "v2.1", "status": "CURRENT", "version": f"2.{self.cloud.config.max_microversion_minor}",
               "min_version": "2.1",
               "updated": VERSION_UPDATED, "links": [{"rel": "self", "href": f"{self._base}/v2.1/"}]}
        if full:
            doc["links"].append({"rel": "describedby", "type": "text/html",
                                 "href": "http://docs.openstack.org/"})
            doc["media-types"] = [{"base": "application/json",
                                   "type": "application/vnd.openstack.compute+json;version=2.1"}]
        return doc

    def versions(self, call: Call) -> Response:
        return Response.json(200, {"versions": [
            {**LEGACY_VERSION, "links": [{"rel": "self", "href": f"{self._base}/v2/"}]},
            self._version_doc(False)]})

    def version(self, call: Call) -> Response:
        return Response.json(200, {"version": self._version_doc(True)})

    def legacy_version(self, call: Call) -> Response:
        return Response.json(200, {"version": {
            **LEGACY_VERSION, "links": [{"rel": "self", "href": f"{self._base}/v2/"},
                                        {"rel": "describedby", "type": "text/html",
                                         "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2"}]}})

    # -- flavors -----------------------------------------------------------
    def _add_flavor(self, flavor_id: str, name: str, ram: int, vcpus: int, disk: int, **extra) -> Flavor:
        flavor = Flavor(flavor_id, name, ram, vcpus, disk, len(self.flavors) + 1, **extra)
        self.flavors[flavor_id] = flavor
        return flavor

    def _flavor_view(self, flavor: Flavor, minor: int, detail: bool) -> dict:
        view = {"id": flavor.id, "name": flavor.name}
        if detail:
            view.update({"ram": flavor.ram, "disk": flavor.disk,
                         "swap": flavor.swap if minor >= 75 else (flavor.swap or ""),
                         "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral})
            if minor < 102:
                view["OS-FLV-DISABLED:disabled"] = False
            view["vcpus"] = flavor.vcpus
            view["os-flavor-access:is_public"] = flavor.is_public
            if minor < 102:
                view["rxtx_factor"] = 1.0
        view["links"] = self._links("flavors", flavor.id)
        if minor >= 55:
            view["description"] = flavor.description
        if detail and minor >= 61:
            view["extra_specs"] = dict(flavor.extra_specs)
        return view

    def _listed_flavors(self, call: Call) -> tuple[list[Flavor], int]:
        """The flavors a list answers, as Nova filters and pages them: public ones (an admin's
        `is_public=none|false` shows the others), `minRam`/`minDisk` as lower bounds, sorted by
        id, `limit` (at most MAX_LIMIT) after the `marker` flavor; and the page size asked for."""
        request = call.request
        limit_text = request.arg("limit")
        if limit_text is not None and not (limit_text.isdigit() and limit_text.isascii()):
            raise ApiError(400, f"Invalid input for query parameters limit. Value: {limit_text}. "
                                f"'{limit_text}' does not match '^[0-9]*$'")
        limit = min(int(limit_text or MAX_LIMIT) or MAX_LIMIT, MAX_LIMIT)
        public: bool | None = True
        wanted = request.arg("is_public")
        if self._admin(call) and wanted is not None:
            public = None if wanted.lower() == "none" else _strict_bool(wanted, f"Invalid is_public filter [{wanted}]")
        flavors = sorted(self.flavors.values(), key=lambda f: f.id)
        if public is not None:
            flavors = [f for f in flavors if f.is_public == public]
        for param, attribute in (("minRam", "ram"), ("minDisk", "disk")):
            bound = request.arg(param)
            if bound is not None:
                try:
                    least = int(bound)
                except ValueError:
                    raise ApiError(400, f"Invalid {param} filter [{bound}]") from None
                flavors = [f for f in flavors if getattr(f, attribute) >= least]
        marker = request.arg("marker")
        if marker is not None:
            if marker not in self.flavors:
                raise ApiError(400, f"marker [{marker}] not found")
            flavors = [f for f in flavors if f.id > marker]
        return flavors[:limit], limit

    def _flavor_list(self, call: Call, detail: bool) -> Response:
        minor = self._minor(call)
        flavors, limit = self._listed_flavors(call)
        body: dict = {"flavors": [self._flavor_view(f, minor, detail) for f in flavors]}
        if flavors and len(flavors) == limit:
            # Nova links the next page whenever a page is as long as the limit
            query = "&".join(f"{k}={v}" for k, values in call.request.query.items() if k != "marker"
                             for v in values)
            path = "flavors/detail" if detail else "flavors"
            body["flavors_links"] = [{"rel": "next", "href": f"{self._base}/v2.1/{path}?"
                                      f"{query + '&' if query else ''}marker={flavors[-1].id}"}]
        return Response.json(200, body)

    def list_flavors(self, call: Call) -> Response:
        return self._flavor_list(call, detail=False)

    def list_flavors_detail(self, call: Call) -> Response:
        return self._flavor_list(call, detail=True)

    def _flavor(self, flavor_id: str) -> Flavor:
        flavor = self.flavors.get(flavor_id)
        if flavor is None:
            raise ApiError(404, f"Flavor {flavor_id} could not be found.")
        return flavor

    def show_flavor(self, call: Call, flavor_id: str) -> Response:
        return Response.json(200, {"flavor": self._flavor_view(self._flavor(flavor_id),
                                                               self._minor(call), True)})

    def flavor_extra_specs(self, call: Call, flavor_id: str) -> Response:
        return Response.json(200, {"extra_specs": dict(self._flavor(flavor_id).extra_specs)})

    def create_flavor(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-flavor-manage:create")
        spec = self._body(call, "flavor")
        for key in ("name", "ram", "vcpus", "disk"):
            if key not in spec:
                raise ApiError(400, f"Invalid input for field/attribute flavor. Value: {spec!r}. "
                                    f"'{key}' is a required property")
        name = str(spec["name"])
        if any(f.name == name for f in self.flavors.values()):
            raise ApiError(409, f"Flavor with name {name} already exists.")
        flavor_id = str(spec.get("id") or uuid.uuid4())
        if flavor_id in self.flavors:
            raise ApiError(409, f"Flavor with ID {flavor_id} already exists.")
        try:
            flavor = self._add_flavor(flavor_id, name, int(spec["ram"]), int(spec["vcpus"]), int(spec["disk"]),
                                      ephemeral=int(spec.get("OS-FLV-EXT-DATA:ephemeral", 0)),
                                      swap=int(spec.get("swap") or 0),
                                      is_public=bool(spec.get("os-flavor-access:is_public", True)),
                                      description=spec.get("description"))
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid input for field/attribute flavor. Value: {spec!r}.") from None
        return Response.json(200, {"flavor": self._flavor_view(flavor, self._minor(call), True)})

    def delete_flavor(self, call: Call, flavor_id: str) -> Response:
        self._policy(call, "os_compute_api:os-flavor-manage:delete")
        self._flavor(flavor_id)
        del self.flavors[flavor_id]
        return Response(202, b"", [], None)

    # -- server views ------------------------------------------------------
    def _addresses(self, server: Server) -> dict:
        if not server.ports:
            return {}
        names = {}
        network = self.cloud.network
        networks_for = getattr(network, "networks_for", None)
        if networks_for:
            names = {n["id"]: n.get("name", n["id"]) for n in networks_for(server.project_id)}
        addresses: dict[str, list] = {}
        by_port: dict[str, str] = {}
        for port in server.ports:
            label = names.get(port.get("network_id"), port.get("network_id", "private"))
            by_port[port.get("id")] = label
            entries = addresses.setdefault(label, [])
            for fixed in port.get("fixed_ips", ()):
                address = fixed.get("ip_address", "")
                entries.append({"version": 6 if ":" in address else 4, "addr": address,
                                "OS-EXT-IPS:type": "fixed",
                                "OS-EXT-IPS-MAC:mac_addr": port.get("mac_address", "")})
        floating_of = getattr(network, "floating_ips_of", None)
        if floating_of:
            for floating in floating_of(server.id) or ():
                label = by_port.get(floating.get("port_id"), next(iter(addresses), "private"))
                mac = next((p.get("mac_address", "") for p in server.ports
                            if p.get("id") == floating.get("port_id")), "")
                addresses.setdefault(label, []).append(
                    {"version": 4, "addr": floating.get("floating_ip_address", ""),
                     "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac})
        return addresses

    def _changed_view(self, server: Server, minor: int, admin: bool, key_name: bool = False) -> dict:
        """The server as PUT /servers/{id} and rebuild answer: before 2.75 without the extended
        attributes a GET shows (rebuild has key_name from 2.54)."""
        if minor >= 75:
            return self._server_view(server, minor, admin)
        view = self._server_view(server, minor, admin=False)
        for key in [key for key in view if key.startswith(SHOW_ONLY_PREFIXES)]:
            del view[key]
        # Nova's extend_address=False: each address only its version and addr
        view["addresses"] = {network: [{"version": address["version"], "addr": address["addr"]}
                                       for address in addresses]
                             for network, addresses in view.get("addresses", {}).items()}
        for key in ("config_drive", "security_groups", *(() if key_name else ("key_name",))):
            view.pop(key, None)
        return view

    def _server_view(self, server: Server, minor: int, admin: bool, show: bool = True) -> dict:
        base = self._base
        flavor = server.flavor
        status = server.status
        if minor >= 47:
            flavor_view = {"vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk,
                           "ephemeral": flavor.ephemeral, "swap": flavor.swap,
                           "original_name": flavor.name, "extra_specs": dict(flavor.extra_specs)}
        else:
            flavor_view = {"id": flavor.id,
                           "links": [{"rel": "bookmark", "href": f"{base}/flavors/{flavor.id}"}]}
        if server.image_id:
            image_view = {"id": server.image_id,
                          "links": [{"rel": "bookmark", "href": f"{base}/images/{server.image_id}"}]}
            if minor >= 98:
                image_view["properties"] = {}
        else:
            image_view = ""
        view = {
            "accessIPv4": server.access_ipv4, "accessIPv6": server.access_ipv6,
            "addresses": self._addresses(server),
            "created": server.created_iso, "flavor": flavor_view, "hostId": server.host_id,
            "id": server.id, "image": image_view,
            "links": [{"rel": "self", "href": f"{base}/v2.1/servers/{server.id}"},
                      {"rel": "bookmark", "href": f"{base}/servers/{server.id}"}],
            "metadata": dict(server.metadata), "name": server.name, "status": status,
            "tenant_id": server.project_id, "user_id": server.user_id, "updated": server.updated_iso,
            "OS-DCF:diskConfig": server.disk_config}
        if server.fault and status in ("ERROR", "DELETED"):
            fault = {"code": server.fault["code"], "created": server.fault["created"],
                     "message": server.fault["message"]}
            if admin or server.fault["code"] != 500:
                fault["details"] = server.fault.get("details", "")
            view["fault"] = fault
        if status in PROGRESS_STATUSES:
            view["progress"] = 0
        view["OS-EXT-AZ:availability_zone"] = (server.availability_zone or "nova") if server.host else ""
        view["config_drive"] = server.config_drive
        view["key_name"] = server.key_name
        # DATETIME columns of a MariaDB-backed Nova: whole seconds (what real Nova 34 shows)
        view["OS-SRV-USG:launched_at"] = _db_time(server.launched_at) if server.launched_at else None
        view["OS-SRV-USG:terminated_at"] = _db_time(server.terminated_at) if server.terminated_at else None
        if server.ports:
            view["security_groups"] = [{"name": name} for name in server.security_groups]
        if admin:
            view["OS-EXT-SRV-ATTR:host"] = server.host
            view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{server.internal_id:08x}"
            view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = server.host
            if minor >= 3:
                view["OS-EXT-SRV-ATTR:reservation_id"] = server.reservation_id
                view["OS-EXT-SRV-ATTR:launch_index"] = 0
                view["OS-EXT-SRV-ATTR:hostname"] = server.hostname or server.name
                view["OS-EXT-SRV-ATTR:kernel_id"] = ""
                view["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
                view["OS-EXT-SRV-ATTR:root_device_name"] = "/dev/sda"
                view["OS-EXT-SRV-ATTR:user_data"] = server.user_data
        view["OS-EXT-STS:task_state"] = server.task_state
        view["OS-EXT-STS:vm_state"] = server.vm_state
        view["OS-EXT-STS:power_state"] = server.power_state
        if minor >= 3:
            view["os-extended-volumes:volumes_attached"] = [
                {"id": volume_id, "delete_on_termination": False} for volume_id in server.volumes]
        else:
            view["os-extended-volumes:volumes_attached"] = [{"id": volume_id} for volume_id in server.volumes]
        if minor >= 9:
            view["locked"] = server.locked
        if minor >= 16 and admin:
            view["host_status"] = "UP" if server.host else ""
        if minor >= 19:
            view["description"] = server.description
        if minor >= 26:
            view["tags"] = list(server.tags)
        if minor >= 63:
            view["trusted_image_certificates"] = None
        if minor >= 71 and show:
            view["server_groups"] = list(server.server_groups)
        if minor >= 73:
            view["locked_reason"] = server.locked_reason
        if minor >= 90:
            view["OS-EXT-SRV-ATTR:hostname"] = server.hostname or server.name
        if minor >= 96:
            view["pinned_availability_zone"] = server.availability_zone
        if minor >= 100:
            view["scheduler_hints"] = dict(server.scheduler_hints)
        return view

    def _brief_view(self, server: Server) -> dict:
        return {"id": server.id, "name": server.name, "links": self._links("servers", server.id)}

    # -- servers: read -------------------------------------------------------
    def show_server(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        return Response.json(200, {"server": self._server_view(server, self._minor(call), self._admin(call))})

    def list_servers(self, call: Call) -> Response:
        return self._list(call, detail=False)

    def list_servers_detail(self, call: Call) -> Response:
        return self._list(call, detail=True)

    def _list(self, call: Call, detail: bool) -> Response:
        request = call.request
        admin = self._admin(call)
        minor = self._minor(call)
        all_tenants = request.arg("all_tenants")
        if all_tenants is not None and all_tenants.lower() not in ("0", "false", "off", "no"):
            if not admin:
                which = "detail" if detail else "index"
                raise ApiError(403, f"Policy doesn't allow os_compute_api:servers:{which}:"
                                    "get_all_tenants to be performed.")
            project = request.arg("project_id") or request.arg("tenant_id")
            pool = self.by_project.get(project, {}) if project else self.servers
            projects = {project} if project else None
        else:
            pool = self.by_project.get(call.token.project_id, {})
            projects = {call.token.project_id}
        # a lazy pipeline: an unfiltered page touches only the servers it shows
        candidates = iter(reversed(pool.values()))  # newest first
        since_text = request.arg("changes-since")
        if since_text is not None:
            since = parse_time(since_text)
            if since is None:
                raise ApiError(400, f"Invalid input for query parameters changes-since. Value: "
                                    f"{since_text}. '{since_text}' is not a 'date-time'")
            since = int(since)  # second resolution, as the timestamps in the views
            gone = (s for s in reversed(self.deleted.values())
                    if projects is None or s.project_id in projects)
            changed = [s for s in chain(candidates, gone) if s.updated >= since]
            changed.sort(key=lambda s: s.created, reverse=True)
            candidates = iter(changed)
        name = request.arg("name")
        if name:
            try:
                pattern = re.compile(name)
            except re.error:
                pattern = re.compile(re.escape(name))
            candidates = (s for s in candidates if pattern.search(s.name))
        ip4, ip6 = request.arg("ip"), request.arg("ip6") if admin or minor >= 5 else None
        if ip4 is not None or ip6 is not None:
            # Nova matches the start of each fixed address; a filter not given is the text "None"
            v4, v6 = (_pattern(str(text)) for text in (ip4, ip6))
            candidates = (s for s in candidates if any(
                (v6 if ":" in fixed.get("ip_address", "") else v4).match(fixed.get("ip_address", ""))
                for port in s.ports for fixed in port.get("fixed_ips", ())))
        statuses = {value.upper() for value in request.query.get("status", ()) if value}
        if statuses:
            candidates = (s for s in candidates if s.status in statuses)
        flavor_id, image_ref = request.arg("flavor"), request.arg("image")
        host = request.arg("host") if admin else None
        if flavor_id:
            candidates = (s for s in candidates if s.flavor.id == flavor_id)
        if image_ref:
            candidates = (s for s in candidates if s.image_id == image_ref)
        if host:
            candidates = (s for s in candidates if s.host == host)
        limit_text = request.arg("limit")
        try:
            limit = min(int(limit_text), MAX_LIMIT) if limit_text is not None else MAX_LIMIT
            if limit < 0:
                raise ValueError
        except ValueError:
            raise ApiError(400, f"Invalid input for query parameters limit. Value: {limit_text}. "
                                f"'{limit_text}' does not match '^[0-9]*$'") from None
        marker = request.arg("marker")
        if marker:
            for server in candidates:
                if server.id == marker:
                    break
            else:
                raise ApiError(400, f"marker [{marker}] not found")
        page = list(islice(candidates, limit))
        more = next(candidates, None) is not None
        if detail:
            body: dict = {"servers": [self._server_view(s, minor, admin, show=False) for s in page]}
        else:
            body = {"servers": [self._brief_view(s) for s in page]}
        # Nova links the next page whenever a page is full
        if page and len(page) == limit and (limit_text is not None or more):
            params = [(k, v) for k, values in request.query.items() if k != "marker" for v in values]
            if "limit" not in request.query:
                params.append(("limit", str(limit)))
            params.append(("marker", page[-1].id))
            query = "&".join(f"{k}={v}" for k, v in params)
            path = "servers/detail" if detail else "servers"
            body["servers_links"] = [{"rel": "next", "href": f"{self._base}/v2.1/{path}?{query}"}]
        return Response.json(200, body)

    def update_server(self, call: Call, server_id: str) -> Response:
        minor = self._minor(call)
        fields = checked_update(self._body(call, "server"), minor)
        server = self._server(call, server_id)
        if "pinned_availability_zone" in fields:
            self._pin(server, fields.pop("pinned_availability_zone"))
        for key, attribute in (("name", "name"), ("description", "description"), ("hostname", "hostname"),
                               ("accessIPv4", "access_ipv4"), ("accessIPv6", "access_ipv6"),
                               ("OS-DCF:diskConfig", "disk_config")):
            if key in fields:
                setattr(server, attribute, fields[key])
        server.touch()
        return Response.json(200, {"server": self._changed_view(server, minor, self._admin(call))})

    def _pin(self, server: Server, zone: str | None) -> None:
        """2.104: pin a server to the zone it is in, or unpin it (None); a pinned one unpins first."""
        current = (server.availability_zone or "nova") if server.host else None
        if zone is None:
            server.availability_zone = None
        elif server.availability_zone is not None and zone != server.availability_zone:
            raise ApiError(409, "Cannot change pinned availability zone directly. Unpin first by setting "
                                "pinned_availability_zone to null.")
        elif server.availability_zone is None and zone != current:
            raise ApiError(409, f"Server can only be pinned to its current availability zone '{current}', "
                                f"but '{zone}' was requested.")
        else:
            server.availability_zone = zone

    # -- quotas ------------------------------------------------------------
    def _limits(self, project_id: str) -> dict[str, int]:
        config = self.cloud.config
        limits = {"cores": config.quota_cores, "instances": config.quota_instances, "key_pairs": 100,
                  "metadata_items": 128, "ram": config.quota_ram, "server_group_members": 10,
                  "server_groups": 10, "injected_file_content_bytes": 10240,
                  "injected_file_path_bytes": 255, "injected_files": 5}
        limits.update((key, value) for key, value in self.default_quotas.items() if key in limits)
        limits.update(self.quotas.get(project_id, {}))
        return limits

    def _usage(self, project_id: str) -> dict[str, int]:
        usage = self.usage.get(project_id)
        if usage is None:
            usage = self.usage[project_id] = {"instances": 0, "cores": 0, "ram": 0}
        return usage

    def _check_quota(self, project_id: str, count: int, flavor: Flavor) -> bool:
        """nova-api's check: 403 over the quota; True when the boot takes the last of it."""
        limits = self._limits(project_id)
        usage = self._usage(project_id)
        last = False
        for resource, wanted in (("instances", count), ("cores", count * flavor.vcpus),
                                 ("ram", count * flavor.ram)):
            limit = limits[resource]
            if limit >= 0:
                if usage[resource] + wanted > limit:
                    raise ApiError(403, f"Quota exceeded for {resource}: Requested {wanted}, but already "
                                        f"used {usage[resource]} of {limit} {resource}")
                last = last or usage[resource] + 2 * wanted > limit
        return last

    def _fitting_count(self, project_id: str, flavor: Flavor, least: int, most: int) -> int:
        """How many servers of a min_count/max_count boot to make: as many as the quota leaves
        room for, at most max_count; max_count when not even min_count fits (the check refuses it)."""
        limits, usage = self._limits(project_id), self._usage(project_id)
        room = most
        for resource, each in (("instances", 1), ("cores", flavor.vcpus), ("ram", flavor.ram)):
            if limits[resource] >= 0 and each:
                room = min(room, (limits[resource] - usage[resource]) // each)
        return room if least <= room else most

    def _recheck_quota(self, server: Server) -> str | None:
        """The conductor's re-check once the instance exists: Nova's TooManyInstances text, or None.

        It counts instances in the cell (boots still being scheduled are build requests, not
        counted), with a delta of 0, so the message says the whole limit is used."""
        project_id = server.project_id
        limits = self._limits(project_id)
        usage = self._usage(project_id)
        # cheap when the boots still scheduling do not matter: the usage counts them too
        if all(limits[r] < 0 or usage[r] <= limits[r] for r in ("instances", "cores", "ram")):
            return None
        in_cell = dict(usage)
        for other_id in self.scheduling:
            other = self.servers.get(other_id)
            if other is not None and other.project_id == project_id:
                in_cell["instances"] -= 1
                in_cell["cores"] -= other.flavor.vcpus
                in_cell["ram"] -= other.flavor.ram
        overs = [r for r in ("cores", "instances", "ram") if 0 <= limits[r] < in_cell[r]]
        if not overs:
            return None
        count, flavor = server.boot_count, server.flavor
        requested = {"instances": count, "cores": count * flavor.vcpus, "ram": count * flavor.ram}
        allowed = ", ".join(str(limits[r]) for r in overs)
        names = ", ".join(overs)
        return (f"Quota exceeded for {names}: Requested {', '.join(str(requested[r]) for r in overs)}, "
                f"but already used {allowed} of {allowed} {names}")

    def _charge(self, project_id: str, flavor: Flavor, sign: int, instances: bool = True) -> None:
        usage = self._usage(project_id)
        if instances:
            usage["instances"] += sign
        usage["cores"] += sign * flavor.vcpus
        usage["ram"] += sign * flavor.ram

    def on_project_created(self, project) -> None:
        self._usage(project.id)

    def _quota_keys(self, minor: int) -> list[str]:
        keys = ["cores", "instances", "key_pairs", "metadata_items", "ram", "server_group_members",
                "server_groups"]
        if minor < 57:
            keys += ["injected_file_content_bytes", "injected_file_path_bytes", "injected_files"]
        if minor < 36:
            keys += ["fixed_ips", "floating_ips", "security_group_rules", "security_groups"]
        return sorted(keys)

    def _quota_value(self, project_id: str, key: str) -> int:
        limits = self._limits(project_id)
        if key in limits:
            return limits[key]
        config = self.cloud.config
        return self.quotas.get(project_id, {}).get(key, self.default_quotas.get(key, {
            "floating_ips": config.quota_floating_ips, "fixed_ips": -1, "security_groups": 10,
            "security_group_rules": 20}.get(key, -1)))

    def _quota_project(self, call: Call, project_id: str) -> None:
        if project_id != call.token.project_id and not self._admin(call):
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed.")

    def show_quotas(self, call: Call, project_id: str) -> Response:
        self._quota_project(call, project_id)
        body = {"id": project_id}
        for key in self._quota_keys(self._minor(call)):
            body[key] = self._quota_value(project_id, key)
        return Response.json(200, {"quota_set": body})

    def show_quota_defaults(self, call: Call, project_id: str) -> Response:
        body = {"id": project_id}
        saved = self.quotas.pop(project_id, None)
        try:
            for key in self._quota_keys(self._minor(call)):
                body[key] = self._quota_value(project_id, key)
        finally:
            if saved is not None:
                self.quotas[project_id] = saved
        return Response.json(200, {"quota_set": body})

    def show_quotas_detail(self, call: Call, project_id: str) -> Response:
        self._quota_project(call, project_id)
        usage = self._usage(project_id)
        in_use = {"instances": usage["instances"], "cores": usage["cores"], "ram": usage["ram"],
                  "server_groups": sum(1 for g in self.server_groups.values() if g.project_id == project_id)}
        body = {"id": project_id}
        for key in self._quota_keys(self._minor(call)):
            body[key] = {"limit": self._quota_value(project_id, key), "in_use": in_use.get(key, 0),
                         "reserved": 0}
        return Response.json(200, {"quota_set": body})

    def update_quotas(self, call: Call, project_id: str) -> Response:
        self._policy(call, "os_compute_api:os-quota-sets:update")
        spec = self._body(call, "quota_set")
        known = set(self._quota_keys(1)) | set(self._quota_keys(self._minor(call)))
        updates = {}
        for key, value in spec.items():
            if key == "force":
                continue
            if key not in known:
                raise ApiError(400, f"Invalid input for field/attribute quota_set. Value: {spec!r}. "
                                    f"Additional properties are not allowed ('{key}' was unexpected)")
            try:
                updates[key] = int(value)
            except (TypeError, ValueError):
                raise ApiError(400, f"Invalid input for field/attribute {key}. Value: {value}.") from None
        self.quotas.setdefault(project_id, {}).update(updates)
        body = {key: self._quota_value(project_id, key) for key in self._quota_keys(self._minor(call))}
        return Response.json(200, {"quota_set": body})

    def delete_quotas(self, call: Call, project_id: str) -> Response:
        """Back to the defaults: the project's own limits are forgotten."""
        self._policy(call, "os_compute_api:os-quota-sets:delete")
        self.quotas.pop(project_id, None)
        return Response(202, b"", content_type=None)

    def limits(self, call: Call) -> Response:
        minor = self._minor(call)
        project_id = call.token.project_id
        limits = self._limits(project_id)
        usage = self._usage(project_id)
        groups = sum(1 for g in self.server_groups.values() if g.project_id == project_id)
        absolute = {"maxTotalCores": limits["cores"]}
        if minor < 57:
            absolute.update({"maxPersonality": limits["injected_files"],
                             "maxPersonalitySize": limits["injected_file_content_bytes"]})
        absolute["maxTotalInstances"] = limits["instances"]
        absolute["maxTotalKeypairs"] = limits["key_pairs"]
        absolute["maxServerMeta"] = limits["metadata_items"]
        if minor < 39:
            absolute["maxImageMeta"] = 128
        absolute.update({"maxTotalRAMSize": limits["ram"], "maxServerGroups": limits["server_groups"],
                         "maxServerGroupMembers": limits["server_group_members"]})
        if minor < 36:
            absolute.update({"maxTotalFloatingIps": -1, "maxSecurityGroups": -1,
                             "maxSecurityGroupRules": -1})
        absolute.update({"totalRAMUsed": usage["ram"], "totalCoresUsed": usage["cores"],
                         "totalInstancesUsed": usage["instances"]})
        if minor < 36:
            absolute.update({"totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0})
        absolute["totalServerGroupsUsed"] = groups
        return Response.json(200, {"limits": {"rate": [], "absolute": absolute}})

    # -- servers: create ---------------------------------------------------
    def create_server(self, call: Call) -> Response:
        minor = self._minor(call)
        payload = call.body()
        spec = self._body(call, "server", payload)

        def schema(message: str) -> ApiError:
            return ApiError(400, f"Invalid input for field/attribute server. Value: {spec!r}. {message}")
        for key in ("name", "flavorRef"):
            if key not in spec:
                raise schema(f"'{key}' is a required property")
        unknown = sorted(set(spec) - SERVER_CREATE_FIELDS)
        if unknown:   # Nova's schema: additionalProperties is false
            raise schema(f"Additional properties are not allowed ({', '.join(map(repr, unknown))} "
                         f"{'was' if len(unknown) == 1 else 'were'} unexpected)")
        if minor >= 37 and "networks" not in spec:
            raise schema("'networks' is a required property")
        name = checked_name(spec["name"])
        common = checked_common(spec)
        min_count, max_count = checked_counts(spec)
        metadata = checked_metadata({"metadata": spec["metadata"]}, "metadata") if "metadata" in spec else {}
        tags = checked_tags({"tags": spec["tags"]}) if minor >= 52 and "tags" in spec else []
        networks = spec.get("networks")
        if isinstance(networks, str) and (minor < 37 or networks not in ("none", "auto")):
            raise schema(f"{networks!r} is not of type 'array'")
        flavor = self.flavors.get(str(spec["flavorRef"]).rstrip("/").rpartition("/")[2])
        if flavor is None:
            raise ApiError(400, f"Flavor {spec['flavorRef']} could not be found.")
        image_id = str(spec.get("imageRef") or "").rstrip("/").rpartition("/")[2]
        if not image_id and not spec.get("block_device_mapping_v2"):
            raise ApiError(400, "Block Device Mapping is Invalid: Boot sequence for the instance and "
                                "image/block device mapping combination is not valid.")
        if image_id:
            self._check_image(image_id, flavor)
        key_name = spec.get("key_name")
        if key_name and key_name not in self.keypairs.get(call.token.user_id, {}):
            raise ApiError(400, "Invalid key_name provided.")
        limits = self._limits(call.token.project_id)
        if len(metadata) > limits["metadata_items"] >= 0:
            raise ApiError(403, f"Maximum number of metadata items exceeds {limits['metadata_items']}")
        checked_personality(spec, minor, limits)
        requested = self._requested_networks(call, networks)
        hints = payload.get("os:scheduler_hints") or payload.get("OS-SCH-HNT:scheduler_hints") or {}
        group = None
        if isinstance(hints, dict) and hints.get("group"):
            group = self.server_groups.get(hints["group"])
            if group is None:
                raise ApiError(400, f"Invalid input for field/attribute group. Value: {hints['group']}.")
        count = self._fitting_count(call.token.project_id, flavor, min_count, max_count)
        if self._check_quota(call.token.project_id, count, flavor):
            # nova-api creates nothing until its image and network checks are done: a boot that
            # takes the last of the quota leaves room to boots racing it for that long
            gevent.sleep(QUOTA_CHECK_WINDOW)
        security_groups = [g.get("name", "default") for g in spec.get("security_groups") or ()
                           if isinstance(g, dict)] or ["default"]
        has_group = getattr(self.cloud.network, "has_security_group", None)
        for group_name in security_groups:
            if group_name != "default" and has_group is not None and not has_group(call.token.project_id, group_name):
                raise ApiError(400, f"Security group {group_name} not found.")
        reservation_id = "r-" + "".join(secrets.choice(string.ascii_lowercase + string.digits)
                                        for _ in range(8))
        admin_pass = spec.get("adminPass") or _password()
        first = None
        for index in range(count):
            server_name = f"{name}-{index + 1}" if count > 1 else name
            server = self._new_server(call, server_name, flavor, image_id, key_name, metadata, requested,
                                      security_groups, reservation_id, hints if isinstance(hints, dict) else {},
                                      group, spec, minor)
            server.boot_count = count
            server.tags = list(tags)
            server.access_ipv4 = common.get("accessIPv4", "")
            server.access_ipv6 = common.get("accessIPv6", "")
            server.disk_config = common.get("OS-DCF:diskConfig", "MANUAL")
            server.user_data = spec.get("user_data")
            first = first or server
        body = {"server": {"id": first.id, "links": self._links("servers", first.id),
                           "OS-DCF:diskConfig": first.disk_config,
                           "security_groups": [{"name": n} for n in security_groups],
                           "adminPass": admin_pass}}
        if spec.get("return_reservation_id"):     # inside "server", as Nova reads it
            body = {"reservation_id": reservation_id}
        return Response.json(202, body, [("location", f"{self._base}/v2.1/servers/{first.id}")])

    def _check_image(self, image_id: str, flavor: Flavor) -> None:
        get_image = getattr(self.cloud.image, "get_image", None)
        if get_image is None:  # no image service in this cloud: accept the reference
            return
        image = get_image(image_id)
        if not image:
            raise ApiError(400, "Can not find requested image")
        if image.get("status", "active") != "active":
            raise ApiError(400, f"Image {image_id} is not active.")
        if flavor.ram < int(image.get("min_ram") or 0):
            raise ApiError(400, "Flavor's memory is too small for requested image.")
        if flavor.disk and flavor.disk < int(image.get("min_disk") or 0):
            raise ApiError(400, "Flavor's disk is too small for requested image.")

    def _usable_networks(self, project_id: str) -> list[dict]:
        networks_for = getattr(self.cloud.network, "networks_for", None)
        if networks_for is None:
            return []
        return [n for n in networks_for(project_id) or () if not n.get("router:external")]

    def _requested_networks(self, call: Call, networks) -> list[str]:
        """Network ids to put a port on, checked now as nova-api does."""
        project_id = call.token.project_id
        if networks == "none":
            return []
        if networks is None or networks == "auto" or networks == []:  # [] means "not given" to Nova
            usable = self._usable_networks(project_id)
            if not usable:
                if networks == "auto":
                    raise ApiError(400, f"Unable to automatically allocate a network for project {project_id}")
                return []
            if len(usable) > 1:
                raise ApiError(409, "Multiple possible networks found, use a Network ID to be more specific.")
            return [usable[0]["id"]]
        if not isinstance(networks, list):
            raise ApiError(400, f"Invalid input for field/attribute networks. Value: {networks!r}. "
                                f"{networks!r} is not of type 'array'")
        networks_for = getattr(self.cloud.network, "networks_for", None)
        known = {n["id"] for n in networks_for(project_id) or ()} if networks_for else None
        chosen = []
        for entry in networks:
            if not isinstance(entry, dict):
                raise ApiError(400, f"Invalid input for field/attribute networks. Value: {networks!r}.")
            if "port" in entry and "uuid" not in entry:
                raise ApiError(400, f"Port {entry['port']} could not be found.")
            network_id = entry.get("uuid")
            if not network_id:
                raise ApiError(400, "Bad networks format: network uuid is not in proper format ( )")
            if known is not None and network_id not in known:
                raise ApiError(400, f"Network {network_id} could not be found.")
            chosen.append(network_id)
        return chosen

    def _new_server(self, call: Call, name: str, flavor: Flavor, image_id: str, key_name: str | None,
                    metadata: dict, networks: list[str], security_groups: list[str], reservation_id: str,
                    hints: dict, group: ServerGroup | None, spec: dict, minor: int) -> Server:
        now = time.time()
        self._counter += 1
        token = call.token
        server = Server(str(uuid.uuid4()), name, token.project_id, token.user_id, flavor, image_id,
                        call.log_context, call.ids, now, self._counter, reservation_id,
                        key_name=key_name, metadata={str(k): str(v) for k, v in metadata.items()},
                        description=spec.get("description") if minor >= 19 else name,
                        security_groups=security_groups, networks=networks,
                        scheduler_hints={k: v for k, v in hints.items()} if minor >= 100 else dict(hints),
                        availability_zone=spec.get("availability_zone"),
                        config_drive="True" if spec.get("config_drive") else "")
        if group is not None:
            group.members.append(server.id)
            server.server_groups.append(group.id)
        self.servers[server.id] = server
        self.by_project.setdefault(server.project_id, {})[server.id] = server
        self._charge(server.project_id, flavor, +1)
        self.last_create[server.project_id] = (now, call.ids)
        self.scheduling[server.id] = now
        server.scheduled_at = now
        self._record_action(call, server, "create")
        build = self.cloud.delay("build")
        self._after(server, build * 0.3, self._schedule, server, build)
        return server

    # -- scheduler, conductor, compute: the build ------------------------------
    def _fits(self, host: str, flavor: Flavor) -> bool:
        config = self.cloud.config
        used = self.host_usage.get(host, {})
        return (used.get("VCPU", 0) + flavor.vcpus <= config.host_capacity_vcpus
                and used.get("MEMORY_MB", 0) + flavor.ram <= config.host_capacity_ram_mb)

    def _candidate_hosts(self, server: Server, exclude: str | None = None) -> list[str]:
        hosts = [h for h in self.cloud.compute_hosts if h != exclude]
        for group_id in server.server_groups:
            group = self.server_groups.get(group_id)
            if group is None:
                continue
            peers = {self.servers[m].host for m in group.members
                     if m != server.id and m in self.servers and self.servers[m].host}
            if group.policy == "affinity" and peers:
                hosts = [h for h in hosts if h in peers]
            elif group.policy == "anti-affinity":
                hosts = [h for h in hosts if h not in peers]
        # spread: the emptiest host first, as the RAM weigher does
        return sorted(hosts, key=lambda h: (self.host_usage.get(h, {}).get("MEMORY_MB", 0),
                                            self.cloud.compute_hosts.index(h)))

    def _claim(self, server: Server, host: str, flavor: Flavor) -> bool:
        claim = getattr(self.cloud.placement, "claim", None)
        if claim is not None:
            if not claim(server.id, host, flavor.resources, server.project_id, server.user_id):
                return False
        elif not self._fits(host, flavor):
            return False
        used = self.host_usage.setdefault(host, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0, "instances": 0})
        for resource, amount in flavor.resources.items():
            used[resource] += amount
        used["instances"] += 1
        return True

    def _release_host(self, server: Server, host: str | None, flavor: Flavor, placement: bool = True) -> None:
        if placement:
            free = getattr(self.cloud.placement, "free", None)
            if free is not None:
                free(server.id)
        used = self.host_usage.get(host or "")
        if used:
            for resource, amount in flavor.resources.items():
                used[resource] = max(0, used[resource] - amount)
            used["instances"] = max(0, used["instances"] - 1)

    def _schedule(self, server: Server, build: float) -> None:
        accepted = self.scheduling.pop(server.id, server.scheduled_at)
        ctx = server.context
        # another boot accepted at nearly the same time is still being scheduled: both
        # schedulers saw the same free capacity, and placement lets only one claim win
        rival = next((self.servers.get(other) for other, at in self.scheduling.items()
                      if abs(at - accepted) <= RACE_WINDOW), None)
        if rival is not None and self.cloud.faults.roll("scheduler-capacity-race"):
            self._no_valid_host(server, race_with=rival)
            return
        host = self._group_burst_host(server)
        if host is None:
            host = next((h for h in self._candidate_hosts(server) if self._claim(server, h, server.flavor)), None)
        if host is None:
            self._no_valid_host(server)
            return
        # the instance now exists in the cell: boots that raced past nova-api's check are over
        over_quota = self._recheck_quota(server)
        if over_quota is not None and not self._quota_recheck_skipped(server, over_quota):
            self._quota_recheck_failed(server, host, over_quota)
            return
        server.host = host
        server.host_id = self._host_id(server.project_id, host)
        if server.task_state != "deleting":
            server.task_state = None
        server.touch()
        self.cloud.logs.scheduler.write(
            "INFO", "nova.scheduler.manager", f"Selected host {host} (node {host}) for the instance",
            ctx, instance=server.id)
        self._compute_log(host).write("INFO", "nova.compute.claims", f"Claim successful on node {host}",
                                      ctx, instance=server.id)
        server.handed_to_compute = time.time()     # when the compute's build event starts
        self._after(server, build * 0.2, self._spawn, server, build)

    def _no_valid_host(self, server: Server, race_with: Server | None = None) -> None:
        ctx = server.context
        if race_with is not None:
            provider = uuid.uuid5(uuid.NAMESPACE_DNS, race_with.host or self.cloud.compute_hosts[0])
            self.cloud.logs.scheduler.write(
                "WARNING", "nova.scheduler.client.report",
                f"Failed to save allocation for {server.id}. Got HTTP 409: {{\"errors\": [{{\"status\": 409, "
                f"\"title\": \"Conflict\", \"detail\": \"There was a conflict when trying to complete your "
                f"request.\\n\\n consumer generation conflict - expected null but got 1  \", \"code\": "
                f"\"placement.concurrent_update\", \"request_id\": \"req-{uuid.uuid4()}\"}}]}} "
                f"(resource provider {provider})", ctx)
        remote = _remote_traceback(REMOTE_SCHEDULE_FRAMES, f"nova.exception.NoValidHost: {NO_VALID_HOST}")
        local = ["Traceback (most recent call last):"] + CONDUCTOR_FRAMES + [
            f"nova.exception_Remote.NoValidHost_Remote: {NO_VALID_HOST}"] + remote.splitlines() + [""]
        self.cloud.logs.conductor.write(
            "ERROR", "nova.conductor.manager",
            f"Failed to schedule instances: nova.exception_Remote.NoValidHost_Remote: {NO_VALID_HOST}\n"
            + remote, ctx, traceback=local)
        self.cloud.logs.conductor.write(
            "WARNING", "nova.scheduler.utils",
            f"Failed to compute_task_build_instances: {NO_VALID_HOST}", ctx, instance=server.id)
        self.cloud.logs.conductor.write(
            "WARNING", "nova.scheduler.utils", "Setting instance to ERROR state.", ctx, instance=server.id)
        details = "".join(line + "\n" for line in CONDUCTOR_FRAMES)
        self._set_error(server, NO_VALID_HOST, details)
        if server.actions:
            self._event(server.actions[0], "conductor_schedule_and_build_instances", None, "Error",
                        details, NO_VALID_HOST)
        if race_with is not None:
            self.cloud.faults.fired(
                "scheduler-capacity-race", server.boot_ids + race_with.boot_ids, server.id,
                f"boot of {server.id} lost the claim race against {race_with.id}: NoValidHost",
                log="nova-conductor.log")

    def _quota_recheck_failed(self, server: Server, host: str, message: str) -> None:
        """The conductor's re-check refuses the boot: ERROR with Nova's 413 fault, never built.

        As in Nova, the instance keeps its quota usage and its Placement allocations until it
        is deleted; its host's compute never saw it."""
        ctx = server.context
        error = f"nova.exception.TooManyInstances: {message}"
        log = self.cloud.logs.conductor
        log.write("WARNING", "nova.scheduler.utils", f"Failed to compute_task_build_instances: {message}: {error}",
                  ctx)
        log.write("WARNING", "nova.scheduler.utils", f"Setting instance to ERROR state.: {error}", ctx,
                  instance=server.id)
        log.write("ERROR", "oslo_messaging.rpc.server", f"Exception during message handling: {error}", ctx,
                  traceback=["Traceback (most recent call last):", *QUOTA_RECHECK_FRAMES, error])
        self._release_host(server, host, server.flavor, placement=False)
        # the conductor records the create action only for instances it goes on to build
        server.actions = [record for record in server.actions if record.action != "create"]
        self._set_error(server, message, "", code=413)

    def _quota_recheck_skipped(self, server: Server, message: str) -> bool:
        """The planted bug: the re-check is skipped and a boot over the quota is built."""
        if not self.cloud.faults.roll("quota-recheck-skipped"):
            return False
        self.cloud.faults.fired("quota-recheck-skipped", server.boot_ids, server.id,
                                f"boot of {server.id} was built over project {server.project_id}'s quota, "
                                f"the conductor's re-check skipped ({message})")
        return True

    def _set_error(self, server: Server, message: str, details: str, code: int = 500) -> None:
        server.vm_state = "error"
        server.task_state = None
        server.fault = {"code": code, "created": now_iso(), "message": message, "details": details}
        server.touch()

    def _spawn(self, server: Server, build: float) -> None:
        if server.task_state != "deleting":
            server.task_state = "spawning"
        server.touch()
        allocate = getattr(self.cloud.network, "allocate_port", None)
        if allocate is not None and server.networks:
            for network_id in server.networks:
                try:
                    server.ports.append(allocate(server.project_id, network_id, server.id, server.boot_ids))
                except KeyError:
                    self._set_error(server, f"Build of instance {server.id} aborted: Network {network_id} "
                                            "could not be found.", "", code=500)
                    self._compute_log(server.host).write(
                        "ERROR", "nova.compute.manager",
                        f"Build of instance {server.id} aborted: Network {network_id} could not be found.",
                        server.context, instance=server.id)
                    return
        self._after(server, build * 0.5, self._spawned, server, build)

    def _spawned(self, server: Server, build: float) -> None:
        log = self._compute_log(server.host)
        if server.lost_delete is not None and server.task_state == "deleting":
            self._delete_during_build(server)
            return
        now = time.time()
        server.vm_state = "active"
        server.task_state = None
        server.power_state = 1
        server.launched_at = now
        server.touch()
        log.write("INFO", "nova.compute.manager", "Took 0.00 seconds to spawn the instance on the hypervisor.",
                  server.context, instance=server.id)
        log.write("INFO", "nova.compute.manager", f"Took {now - server.created:.2f} seconds to build instance.",
                  server.context, instance=server.id)
        if server.actions:
            # a successful boot's one event, as in Nova (the conductor records one only on failure)
            self._event(server.actions[0], "compute__do_build_and_run_instance", server.host,
                        start=server.handed_to_compute)

    def _delete_during_build(self, server: Server) -> None:
        """The planted bug: spawn finishes over a DELETE's task_state; the delete is lost."""
        delete_ctx, delete_ids, record = server.lost_delete
        server.lost_delete = None
        log = self._compute_log(server.host)
        text = (f"Conflict updating instance {server.id}. Expected: {{'task_state': ['spawning']}}. "
                "Actual: {'task_state': 'deleting'}")
        log.write("INFO", "nova.compute.manager", "Terminating instance", delete_ctx, instance=server.id)
        traceback = ["Traceback (most recent call last):"] + SPAWN_FRAMES + [
            f"nova.exception.UnexpectedDeletingTaskStateError: {text}"]
        log.write("ERROR", "nova.compute.manager",
                  f"Instance failed to spawn: nova.exception.UnexpectedDeletingTaskStateError: {text}",
                  server.context, instance=server.id, traceback=traceback)
        log.write("ERROR", "nova.compute.manager",
                  f"Setting instance vm_state to ERROR: nova.exception.UnexpectedDeletingTaskStateError: {text}",
                  delete_ctx, instance=server.id)
        details = "\n".join(traceback) + "\n"
        self._set_error(server, "UnexpectedDeletingTaskStateError", details)
        server.power_state = 0
        server.allocations_leak = True
        self._event(record, "compute_terminate_instance", server.host, "Error", details,
                    "UnexpectedDeletingTaskStateError")
        if server.actions:
            self._event(server.actions[0], "compute__do_build_and_run_instance", server.host, "Error",
                        details, "UnexpectedDeletingTaskStateError")
        self.cloud.faults.fired("delete-during-build", server.boot_ids + delete_ids, server.id,
                                f"DELETE {delete_ids[-1]} landed while {server.id} was building; "
                                "the server went to ERROR instead of being deleted",
                                log=f"nova-compute-{server.host}.log")

    # -- servers: delete -------------------------------------------------------
    def _check_locked(self, call: Call, server: Server) -> None:
        if server.locked and not self._admin(call):
            raise ApiError(409, f"Instance {server.id} is locked")

    def delete_server(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        self._check_locked(call, server)
        if server.task_state == "deleting":
            return Response(204, b"", [], None)
        record = self._record_action(call, server, "delete")
        ctx = call.log_context
        ids = call.ids
        server.delete_started = time.time()
        server.delete_context = ctx
        if server.vm_state == "building" and self.cloud.faults.roll("delete-during-build"):
            # the build keeps going and trips over task_state 'deleting' when it spawns
            server.task_state = "deleting"
            server.lost_delete = (ctx, ids, record)
            server.touch()
            return Response(204, b"", [], None)
        if server.attaching and self.cloud.faults.roll("attach-during-delete"):
            server.leaked_volumes |= set(server.attaching)
            server.leak_context = (ctx, ids)
        self._delete_races_action(server, ids)
        server.epoch += 1  # cancels the pending build step or action
        if self.scheduling.pop(server.id, None) is not None:
            self.log(call, "INFO", "nova.compute.api", "Instance Mapping does not exist while attempting "
                     "local delete cleanup.", instance=server.id)
        server.task_state = "deleting"
        server.touch()
        if server.host:
            self._compute_log(server.host).write("INFO", "nova.compute.manager", "Terminating instance",
                                                 ctx, instance=server.id)
        self.cloud.later(self.cloud.delay("delete"), self._deleted, server, ctx, ids, record)
        return Response(204, b"", [], None)

    def drop_delete(self, server: Server, ctx: LogContext | None, ids: list[str]) -> None:
        """A conductor died under the delete's RPC: after rpc_response_timeout the compute gives up,
        reverts the task state and the server is back in its vm_state, while every DELETE meanwhile
        was ignored as "already deleting" (seen on Nova 34 with nova-conductor restarted)."""
        server.delete_dropped = (ctx, ids)
        self.cloud.later(self.cloud.delay("rpc_timeout"), self._delete_reverted, server)

    def _delete_reverted(self, server: Server) -> None:
        if server.deleted or server.delete_dropped is None:
            return
        ctx, _ids = server.delete_dropped
        server.delete_dropped = None
        message = f"Timed out waiting for a reply to message ID {uuid.uuid4().hex}"
        log = self._compute_log(server.host)
        log.write("ERROR", "oslo_messaging.rpc.server",
                  f"Exception during message handling: oslo_messaging.exceptions.MessagingTimeout: {message}",
                  ctx, traceback=["Traceback (most recent call last):", *MESSAGING_TIMEOUT_FRAMES,
                                  f"oslo_messaging.exceptions.MessagingTimeout: {message}"])
        log.write("INFO", "nova.compute.manager", "Successfully reverted task state from deleting on failure "
                  "for instance.", ctx, instance=server.id)
        server.task_state = None
        server.touch()

    def _deleted(self, server: Server, ctx: LogContext, ids: list[str], record: InstanceAction) -> None:
        if server.deleted or server.delete_dropped is not None:
            return
        host = server.host
        log = self._compute_log(host)
        if host:
            log.write("INFO", "nova.compute.manager",
                      "Took 0.00 seconds to destroy the instance on the hypervisor.", ctx, instance=server.id)
        if server.snapshot is not None:
            self._snapshot_disappeared(server, host)
        self._drop_shelved_image(server)
        detach = getattr(self.cloud.volume, "detach", None)
        for volume_id in list(server.volumes):
            if volume_id in server.leaked_volumes:
                self._leak_volume(server, volume_id)
            elif detach is not None:
                detach(volume_id, server.id, ids)
        release = getattr(self.cloud.network, "release_ports", None)
        if release is not None:
            release(server.id, ids)
        if host:
            self._compute_log(host).write("INFO", "nova.compute.manager",
                                          f"Took 0.0{len(server.ports)} seconds to deallocate network "
                                          "for instance.", None, instance=server.id)
        self._migration_deleted(server, ids)
        # an unshelve in flight has claimed a host while the server is still shelved_offloaded
        if server.vm_state != "shelved_offloaded" or host:
            self._release_host(server, host, server.flavor, placement=not server.allocations_leak)
        if not server.allocations_leak:
            (log if host else self.cloud.logs.conductor).write(
                "INFO", "nova.scheduler.client.report", f"Deleted allocations for instance {server.id}", ctx)
        self._event(record, "compute_terminate_instance", host)
        # a boot in the same project landed while this delete was pending: both lock the
        # project's usage row, and the delete's quota commit loses the deadlock
        boot_time, boot_ids = self.last_create.get(server.project_id, (0.0, []))
        drift = boot_time > server.delete_started and self.cloud.faults.roll("quota-usage-drift")
        self._charge(server.project_id, server.flavor, -1, instances=not drift)
        if drift:
            self._quota_commit_failed(server, log if host else self.cloud.logs.conductor, ctx, ids, boot_ids)
        now = time.time()
        server.deleted = True
        server.vm_state = "deleted"
        server.task_state = None
        server.power_state = 0
        server.terminated_at = now
        server.touch()
        server.epoch += 1
        self.servers.pop(server.id, None)
        self.by_project.get(server.project_id, {}).pop(server.id, None)
        for group_id in server.server_groups:
            group = self.server_groups.get(group_id)
            if group and server.id in group.members:
                group.members.remove(server.id)
        self.deleted[server.id] = server
        while len(self.deleted) > DELETED_KEPT:
            self.deleted.popitem(last=False)
        self._guest_sync(server)
        if server.preempted is not None:
            self._action_preempted(server)
        if server.unshelve_race is not None:
            self._unshelve_recreates_allocations(server)

    def _quota_commit_failed(self, server: Server, log: ServiceLog, ctx: LogContext, ids: list[str],
                             boot_ids: list[str]) -> None:
        """The planted bug: the delete's usage decrement is lost; in_use stays one too high."""
        reservation = str(uuid.uuid4())
        deadlock = ("oslo_db.exception.DBDeadlock: (pymysql.err.OperationalError) (1213, 'Deadlock found "
                    "when trying to get lock; try restarting transaction')")
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{NOVA_PY}/quota.py", 1167, "commit", "self._driver.commit(context, reservations,"),
            (f"{NOVA_PY}/quota.py", 637, "commit", "db.reservation_commit(context, reservations,"),
            (f"{NOVA_PY}/db/main/api.py", 3480, "reservation_commit",
             "_quota_usage_get_all_by_project_and_user(context, project_id, user_id)"),
            ("/opt/stack/venv/lib/python3.11/site-packages/oslo_db/sqlalchemy/exc_filters.py", 88,
             "_deadlock_error", "raise exception.DBDeadlock(operational_error)")) + [deadlock]
        log.write("ERROR", "nova.quota", f"Failed to commit reservations ['{reservation}']", ctx,
                  traceback=traceback)
        name = log.path.name
        self.cloud.faults.fired("quota-usage-drift", ids + boot_ids, server.id,
                                f"delete of {server.id} raced a boot in project {server.project_id}; "
                                "instance usage left one too high", log=name)

    # -- planted races of the contention storm -------------------------------
    def _state_change_race(self, call: Call, server: Server, action: str) -> None:
        """The planted bug: a second state change inside the first's check-then-save window
        passed the API's check too; its instance.save(expected_task_state=[None]) fails -> 500."""
        change = server.last_change
        if change is None or server.task_state is None or server.task_state == "deleting":
            return
        if time.monotonic() - change[0] > STATE_RACE_WINDOW or server.vm_state == "building":
            return
        rule = ACTIONS.get(action)
        if rule is not None and server.vm_state not in rule.vm_states:
            return  # refused by the vm_state check before any save: a plain 409
        if not self.cloud.faults.roll("state-change-race"):
            return
        text = (f"Conflict updating instance {server.id}. Expected: {{'task_state': [None]}}. "
                f"Actual: {{'task_state': '{server.task_state}'}}")
        controller, method = API_ACTIONS.get(action, ("servers.py", action))
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{NOVA_PY}/api/openstack/wsgi.py", 658, "wrapped", "return f(*args, **kwargs)"),
            (f"{NOVA_PY}/api/openstack/compute/{controller}", 1101, f"_action_{method}",
             f"self.compute_api.{method}(context, instance)"),
            (f"{NOVA_PY}/compute/api.py", 226, "inner", "return function(self, context, instance, *args, **kwargs)"),
            (f"{NOVA_PY}/compute/api.py", 3864, method, "instance.save(expected_task_state=[None])"),
            *SAVE_FRAMES) + [f"nova.exception.UnexpectedTaskStateError: {text}"]
        self.log(call, "ERROR", "nova.api.openstack.wsgi",
                 f"Unexpected exception in API method: nova.exception.UnexpectedTaskStateError: {text}",
                 traceback=traceback)
        self.cloud.faults.fired("state-change-race", list(change[2]) + call.ids, server.id,
                                f"{action} on {server.id} raced {change[4]} accepted "
                                f"{1000 * (time.monotonic() - change[0]):.0f} ms earlier: HTTP 500",
                                log=self.cloud.logs.api.path.name)
        raise ApiError(500, "Unexpected API Error. Please contact the administrator\n"
                            "<class 'nova.exception.UnexpectedTaskStateError'>", "internal")

    def _delete_races_action(self, server: Server, delete_ids: list[str]) -> None:
        """A DELETE accepted while an action is in flight: maybe plant one of two races."""
        change = server.last_change
        if change is None or server.task_state in (None, "deleting") or server.vm_state == "building":
            return
        if change[4] == "createImage":
            return  # snapshot_instance expects the delete: it removes the partial image, no crash
        if change[4] == "unshelve" and server.vm_state in ("shelved", "shelved_offloaded"):
            if self.cloud.faults.roll("unshelve-delete-allocations"):
                server.unshelve_race = (change, list(delete_ids))
        elif server.host and self.cloud.faults.roll("delete-preempts-action"):
            server.preempted = (change, list(delete_ids))

    def _action_preempted(self, server: Server) -> None:
        """The planted bug: the action's compute thread saves over the DELETE and crashes."""
        (_, ctx, ids, task, action, record), delete_ids = server.preempted
        server.preempted = None
        host = server.host or self.cloud.compute_hosts[0]
        function = MANAGER_ACTIONS.get(action, f"{action}_instance")
        text = (f"Conflict updating instance {server.id}. Expected: {{'task_state': ['{task}']}}. "
                "Actual: {'task_state': 'deleting'}")
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{MSG_PY}/rpc/server.py", 174, "_process_incoming", "res = self.dispatcher.dispatch(message)"),
            (f"{MSG_PY}/rpc/dispatcher.py", 309, "dispatch", "return self._do_dispatch(endpoint, method, ctxt, args)"),
            (f"{MSG_PY}/rpc/dispatcher.py", 229, "_do_dispatch", "result = func(ctxt, **new_args)"),
            (f"{NOVA_PY}/exception_wrapper.py", 65, "wrapped", "with excutils.save_and_reraise_exception():"),
            (f"{NOVA_PY}/compute/utils.py", 1483, "decorated_function", "return function(self, context, *args, **kwargs)"),
            (f"{NOVA_PY}/compute/manager.py", 215, "decorated_function",
             "return function(self, context, *args, **kwargs)"),
            (f"{NOVA_PY}/compute/manager.py", 4088, function,
             f"instance.save(expected_task_state=task_states.{task.upper().replace('-', '_')})"),
            *SAVE_FRAMES) + [f"nova.exception.UnexpectedDeletingTaskStateError: {text}"]
        log = self._compute_log(host)
        log.write("ERROR", "oslo_messaging.rpc.server", "Exception during message handling: "
                  f"nova.exception.UnexpectedDeletingTaskStateError: {text}", ctx, traceback=traceback)
        self._event(record, f"compute_{function}", host, "Error", "\n".join(traceback) + "\n",
                    "UnexpectedDeletingTaskStateError")
        self.cloud.faults.fired("delete-preempts-action", list(ids) + delete_ids, server.id,
                                f"DELETE {delete_ids[-1]} landed while {action} was in flight on {host}",
                                log=log.path.name)

    def _unshelve_recreates_allocations(self, server: Server) -> None:
        """The planted bug: the unshelve's claim lands after the delete freed the allocations."""
        (_, ctx, ids, _task, _action, record), delete_ids = server.unshelve_race
        server.unshelve_race = None
        claim = getattr(self.cloud.placement, "claim", None)
        host = server.host or next(iter(self._candidate_hosts(server)), self.cloud.compute_hosts[0])
        if claim is None or not claim(server.id, host, server.flavor.resources, server.project_id,
                                      server.user_id):
            return
        log = self._compute_log(host)
        text = f"Instance {server.id} could not be found."
        traceback = ["Traceback (most recent call last):"] + _frames(
            (f"{NOVA_PY}/compute/manager.py", 6851, "_unshelve_instance",
             "self._power_on(context, instance)"),
            (f"{NOVA_PY}/compute/manager.py", 3193, "_power_on", "self.driver.power_on(context, instance,"),
            (f"{NOVA_PY}/objects/instance.py", 1003, "refresh",
             "current = self.__class__.get_by_uuid(context, uuid=self.uuid,"),
            (f"{NOVA_PY}/db/main/api.py", 1364, "_instance_get_by_uuid",
             "raise exception.InstanceNotFound(instance_id=uuid)")) + [f"nova.exception.InstanceNotFound: {text}"]
        log.write("ERROR", "nova.compute.manager", f"Instance failed to spawn: nova.exception.InstanceNotFound: "
                  f"{text}", ctx, instance=server.id, traceback=traceback)
        self._event(record, "compute_unshelve_instance", host, "Error", "\n".join(traceback) + "\n",
                    "InstanceNotFound")
        self.cloud.faults.fired("unshelve-delete-allocations", list(ids) + delete_ids, server.id,
                                f"unshelve of {server.id} raced DELETE {delete_ids[-1]}: its allocations on "
                                f"{host} were re-created after the delete", log=log.path.name)
        # the periodic task runs on the cloud's clock: scaled like its build delay
        scale = self.cloud.config.delays.build[1] / Delays().build[1]
        self.cloud.later(max(HEAL_INTERVAL * scale, 0.5), self._heal_allocations, server.id, host)

    def _heal_allocations(self, server_id: str, host: str) -> None:
        """update_available_resource: allocations of an instance that is gone are removed."""
        placement = self.cloud.placement
        held = getattr(placement, "allocations_of", lambda _id: {})(server_id)
        if not held or server_id in self.servers:
            return
        placement.free(server_id)
        remained = {rp: {"resources": alloc["resources"]} for rp, alloc in held.items()}
        self._compute_log(host).write(
            "WARNING", "nova.compute.resource_tracker",
            f"Instance {server_id} has been deleted (perhaps locally). Deleting allocations that remained "
            f"for this instance against this compute host: {remained}.", LogContext(f"req-{uuid.uuid4()}"))

    def _group_burst_host(self, server: Server) -> str | None:
        """The planted bug: boots of one burst into an anti-affinity group each saw the group
        before the others' claims; this one takes a peer's host, the policy is violated. A peer
        raced it when they were accepted nearly together, or when this boot was accepted before
        the peer's host was recorded (its scheduling was still under way)."""
        for group_id in server.server_groups:
            group = self.server_groups.get(group_id)
            if group is None or group.policy != "anti-affinity":
                continue
            peers = [peer for peer in (self.servers.get(m) for m in group.members if m != server.id)
                     if peer is not None and peer.host and _overlapped(peer, server)]
            if not peers or not self.cloud.faults.roll("group-policy-burst"):
                continue
            peer = peers[0]
            if not self._claim(server, peer.host, server.flavor):
                continue
            self.cloud.faults.fired("group-policy-burst", peer.boot_ids + server.boot_ids, server.id,
                                    f"anti-affinity group {group.id}: {server.id} placed on {peer.host} "
                                    f"with {peer.id}", log=self.cloud.logs.scheduler.path.name)
            return peer.host
        return None

    # -- server actions ----------------------------------------------------
    def _conflict(self, server: Server, name: str, vm_states: tuple[str, ...],
                  task_states: tuple = (None,)) -> None:
        if server.vm_state not in vm_states:
            raise ApiError(409, f"Cannot '{name}' instance {server.id} while it is in vm_state {server.vm_state}")
        if server.task_state not in task_states:
            raise ApiError(409, f"Cannot '{name}' instance {server.id} while it is in task_state "
                                f"{server.task_state}")

    def server_action(self, call: Call, server_id: str) -> Response:
        payload = call.body()
        server = self._server(call, server_id)
        if not isinstance(payload, dict) or len(payload) != 1:
            raise ApiError(400, "Malformed request body")
        action, spec = next(iter(payload.items()))
        handler = {"reboot": self._reboot, "lock": self._lock, "unlock": self._unlock,
                   "unshelve": self._unshelve, "resize": self._resize, "confirmResize": self._confirm_resize,
                   "revertResize": self._revert_resize, "rebuild": self._rebuild,
                   "createImage": self._create_image, "rescue": self._rescue, "shelve": self._shelve,
                   "changePassword": self._change_password,
                   "os-getConsoleOutput": self._console_output,
                   "addSecurityGroup": self._add_security_group,
                   "removeSecurityGroup": self._remove_security_group}.get(action)
        if handler is None and action not in ACTIONS:
            raise ApiError(400, f"There is no such action: {action}")
        # reading the console changes nothing; a security group is the ports' (Neutron's), not a state
        if action not in ("lock", "unlock", "os-getConsoleOutput", "addSecurityGroup", "removeSecurityGroup"):
            if action != "createImage":  # Nova's snapshot skips the lock check: a lock guards changes
                self._check_locked(call, server)
            self._state_change_race(call, server, action)
        if handler is not None:
            return handler(call, server, spec)
        rule = ACTIONS[action]
        self._conflict(server, rule.name, rule.vm_states)
        self._start(call, server, rule.instance_action, rule.task_state, rule.event,
                    self._finish_simple, rule)
        return Response(202, b"", [], None)

    def _start(self, call: Call, server: Server, action: str, task_state: str, event: str, step, *args,
               seconds: float | None = None) -> InstanceAction:
        record = self._record_action(call, server, action)
        server.last_change = (time.monotonic(), call.log_context, call.ids, task_state, action, record)
        server.task_state = task_state
        server.epoch += 1
        server.touch()
        self._guest_sync(server)  # e.g. a reboot takes the guest off the network until it is done
        ctx = call.log_context
        self._after(server, self.cloud.delay("action") if seconds is None else seconds,
                    step, server, record, event, ctx, *args)
        return record

    def _finish_simple(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                       rule: ActionRule) -> None:
        host = server.host
        if rule.end_vm_state == "shelved_offloaded":
            if server.shelved_image is not None and self.cloud.config.snapshots_finish:
                image_id, ids = server.shelved_image
                if self.cloud.image.snapshot_saving(image_id) is not None:
                    base = self.cloud.image.data.get(server.image_id, b"") if server.image_id else b""
                    self.cloud.image.snapshot_uploaded(image_id, server.id.encode() + base, ids)
            self._compute_log(host).write("INFO", "nova.compute.manager", "Shelve offloading", ctx,
                                          instance=server.id)
            self._release_host(server, host, server.flavor)
            server.host = None
            server.host_id = ""
        if rule.name == "unshelve":
            self._drop_shelved_image(server)
        server.vm_state = rule.end_vm_state
        server.task_state = None
        server.power_state = rule.end_power_state
        server.touch()
        self._event(record, event, host)

    def _rescue(self, call: Call, server: Server, spec) -> Response:
        """Rescue: 200 with the rescue password (the one asked for, else a new one)."""
        if spec is not None and not isinstance(spec, dict):
            raise ApiError(400, f"Invalid input for field/attribute rescue. Value: {spec!r}. "
                                f"{spec!r} is not of type 'object', 'null'")
        password = (spec or {}).get("adminPass") or _password()
        rule = ACTIONS["rescue"]
        self._conflict(server, rule.name, rule.vm_states)
        self._start(call, server, rule.instance_action, rule.task_state, rule.event, self._finish_simple, rule)
        return Response.json(200, {"adminPass": password})

    def _change_password(self, call: Call, server: Server, spec) -> Response:
        """changePassword: done by the time Nova answers (a synchronous call to the compute host)."""
        if not isinstance(spec, dict) or not isinstance(spec.get("adminPass"), str):
            raise ApiError(400, f"Invalid input for field/attribute changePassword. Value: {spec!r}. "
                                "'adminPass' is a required property")
        self._conflict(server, "changePassword", ("active",))
        record = self._record_action(call, server, "changePassword")
        self._event(record, "compute_set_admin_password", server.host)
        return Response(202, b"", [], None)

    def _console_output(self, call: Call, server: Server, spec) -> Response:
        """os-getConsoleOutput: the last `length` lines of the console (all of it: null or -1)."""
        length = (spec or {}).get("length") if isinstance(spec, dict) else None
        try:
            lines = None if length is None else int(length)
            if lines is not None and lines < -1:
                raise ValueError
        except (TypeError, ValueError):
            raise ApiError(400, f"Invalid input for field/attribute length. Value: {length}. "
                                f"{length!r} is not valid under any of the given schemas") from None
        if not server.host:
            raise ApiError(409, f"Instance {server.id} has not been scheduled to a compute host yet.")
        output = CONSOLE if lines in (None, -1) else CONSOLE[len(CONSOLE) - lines:] if lines else []
        return Response.json(200, {"output": "\n".join(output)})

    def _reboot(self, call: Call, server: Server, spec) -> Response:
        kind = (spec or {}).get("type") if isinstance(spec, dict) else None
        if kind not in ("SOFT", "HARD", "soft", "hard"):
            raise ApiError(400, f"Invalid input for field/attribute reboot. Value: {spec!r}. "
                                "'type' is a required property")
        hard = kind.upper() == "HARD"
        allowed = ("active", "stopped", "paused", "suspended", "error") if hard else ("active",)
        tasks = (None, "rebooting", "reboot_pending", "reboot_started") if hard else (None,)
        self._conflict(server, "reboot", allowed, tasks)
        rule = ActionRule("reboot", allowed, "rebooting_hard" if hard else "rebooting", "active", 1,
                          "compute_reboot_instance", "reboot")
        self._start(call, server, "reboot", rule.task_state, rule.event, self._finish_simple, rule)
        return Response(202, b"", [], None)

    def _lock(self, call: Call, server: Server, spec) -> Response:
        reason = spec.get("locked_reason") if isinstance(spec, dict) else None
        if reason is not None and self._minor(call) < 73:
            raise ApiError(400, "Invalid input for field/attribute lock. Value: "
                                f"{spec!r}. Additional properties are not allowed ('locked_reason' was unexpected)")
        record = self._record_action(call, server, "lock")
        server.locked = True
        server.locked_reason = reason
        server.locked_by = "admin" if self._admin(call) and call.token.project_id != server.project_id else "owner"
        server.touch()
        record.updated_at = time.time()
        return Response(202, b"", [], None)

    def _unlock(self, call: Call, server: Server, spec) -> Response:
        if server.locked_by == "admin" and not self._admin(call):
            raise ApiError(403, "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override "
                                "to be performed.")
        record = self._record_action(call, server, "unlock")
        server.locked = False
        server.locked_reason = None
        server.locked_by = None
        server.touch()
        record.updated_at = time.time()
        return Response(202, b"", [], None)

    def _unshelve(self, call: Call, server: Server, spec) -> Response:
        self._conflict(server, "unshelve", ("shelved", "shelved_offloaded"))
        self._start(call, server, "unshelve", "unshelving", "compute_unshelve_instance", self._unshelve_spawn)
        return Response(202, b"", [], None)

    def _unshelve_spawn(self, server: Server, record: InstanceAction, event: str, ctx: LogContext) -> None:
        host = next((h for h in self._candidate_hosts(server) if self._claim(server, h, server.flavor)), None)
        if host is None:
            server.task_state = None
            server.touch()
            self._event(record, "schedule_instances", None, "Error", None, NO_VALID_HOST)
            self.cloud.logs.conductor.write("WARNING", "nova.scheduler.utils",
                                            f"Failed to compute_task_unshelve_instance: {NO_VALID_HOST}",
                                            ctx, instance=server.id)
            return
        server.host = host
        server.host_id = self._host_id(server.project_id, host)
        server.task_state = "spawning"
        server.touch()
        self._compute_log(host).write("INFO", "nova.compute.claims", f"Claim successful on node {host}",
                                      ctx, instance=server.id)
        self._after(server, self.cloud.delay("action"), self._finish_simple, server, record, event, ctx,
                    ActionRule("unshelve", (), "spawning", "active", 1, event, "unshelve"))

    def _resize(self, call: Call, server: Server, spec) -> Response:
        if not isinstance(spec, dict) or "flavorRef" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute resize. Value: {spec!r}. "
                                "'flavorRef' is a required property")
        self._conflict(server, "resize", ("active", "stopped"))
        flavor = self.flavors.get(str(spec["flavorRef"]))
        if flavor is None:
            raise ApiError(400, f"Flavor {spec['flavorRef']} could not be found.")
        if flavor.id == server.flavor.id:
            raise ApiError(400, "When resizing, instances must change flavor!")
        if flavor.disk < server.flavor.disk:
            raise ApiError(400, "Resize error: Unable to resize disk down.")
        self._start(call, server, "resize", "resize_prep", "compute_resize_instance", self._resize_migrate,
                    flavor)
        return Response(202, b"", [], None)

    def _resize_migrate(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                        flavor: Flavor) -> None:
        source = server.host
        move = getattr(self.cloud.placement, "move", None)
        target = None
        for host in self._candidate_hosts(server, exclude=source):
            if move is None and not self._fits(host, flavor):
                continue
            if move is not None and move(server.id, host, flavor.resources) is False:
                continue
            target = host
            break
        if target is None:
            # allow_resize_to_same_host is False: a one-host cloud cannot resize
            self.cloud.logs.scheduler.write("INFO", "nova.scheduler.host_manager",
                                            f"Host filter ignoring hosts: {source}", ctx)
            self.cloud.logs.conductor.write(
                "WARNING", "nova.scheduler.utils", "Failed to compute_task_migrate_server: "
                f"{NO_VALID_HOST}", ctx)
            self.cloud.logs.conductor.write(
                "WARNING", "nova.scheduler.utils", "Setting instance to ACTIVE state.: "
                f"nova.exception_Remote.NoValidHost_Remote: {NO_VALID_HOST}", ctx, instance=server.id)
            server.task_state = None
            server.touch()
            self._event(record, "cold_migrate", source, "Error", None,
                        "No valid host was found. No valid host found for resize")
            self._event(record, "conductor_migrate_server", source, "Error", None,
                        "No valid host was found. No valid host found for resize")
            return
        self._migration_counter += 1
        now = time.time()
        migration = Migration(self._migration_counter, str(uuid.uuid4()), server.id, source or "", target,
                              server.flavor, flavor, record.user_id, record.project_id, now, now,
                              request_ids=[i for i in (ctx.global_request_id, ctx.request_id) if i])
        self.migrations.append(migration)
        claim = getattr(self.cloud.placement, "claim", None)
        if move is not None and claim is not None and source:
            # as Nova's migration-based allocations: while the resize lasts, the source host's
            # allocation is the migration's, the server's is on the target
            claim(migration.uuid, source, server.flavor.resources, server.project_id, server.user_id)
        self._release_host(server, source, server.flavor, placement=False)
        if move is None:
            self._claim(server, target, flavor)
        else:
            used = self.host_usage.setdefault(target, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0, "instances": 0})
            for resource, amount in flavor.resources.items():
                used[resource] += amount
            used["instances"] += 1
        server.migration = migration
        server.old_flavor, server.flavor = server.flavor, flavor
        server.old_host, server.host = source, target
        server.host_id = self._host_id(server.project_id, target)
        self._charge(server.project_id, flavor, +1, instances=False)
        self._charge(server.project_id, server.old_flavor, -1, instances=False)
        server.task_state = "resize_migrated"
        server.touch()
        self._compute_log(target).write("INFO", "nova.compute.claims", f"Claim successful on node {target}",
                                        ctx, instance=server.id)
        self._after(server, self.cloud.delay("action"), self._resize_finish, server, record, event, migration)

    def _resize_finish(self, server: Server, record: InstanceAction, event: str, migration: Migration) -> None:
        server.vm_state = "resized"
        server.task_state = None
        server.touch()
        migration.status = "finished"
        migration.updated_at = time.time()
        self._event(record, "compute_finish_resize", server.host)

    def _confirm_resize(self, call: Call, server: Server, spec) -> Response:
        self._conflict(server, "confirmResize", ("resized",))
        self._start(call, server, "confirmResize", None, "compute_confirm_resize", self._confirmed)
        return Response(204, b"", [], None)

    def _confirmed(self, server: Server, record: InstanceAction, event: str, ctx: LogContext) -> None:
        self._end_migration(server)
        if server.migration:
            server.migration.status = "confirmed"
            server.migration.updated_at = time.time()
        server.vm_state = "active"
        server.old_flavor = server.old_host = server.migration = None
        server.touch()
        self._event(record, event, server.host)

    def _revert_resize(self, call: Call, server: Server, spec) -> Response:
        self._conflict(server, "revertResize", ("resized",))
        self._start(call, server, "revertResize", "resize_reverting", "compute_revert_resize", self._reverted)
        return Response(202, b"", [], None)

    def _reverted(self, server: Server, record: InstanceAction, event: str, ctx: LogContext) -> None:
        new_flavor, new_host = server.flavor, server.host
        old_flavor, old_host = server.old_flavor or new_flavor, server.old_host or new_host
        move = getattr(self.cloud.placement, "move", None)
        self._end_migration(server)
        if move is not None:
            move(server.id, old_host, old_flavor.resources)
        self._release_host(server, new_host, new_flavor, placement=False)
        used = self.host_usage.setdefault(old_host, {"VCPU": 0, "MEMORY_MB": 0, "DISK_GB": 0, "instances": 0})
        for resource, amount in old_flavor.resources.items():
            used[resource] += amount
        used["instances"] += 1
        self._charge(server.project_id, old_flavor, +1, instances=False)
        self._charge(server.project_id, new_flavor, -1, instances=False)
        if server.migration:
            server.migration.status = "reverted"
            server.migration.updated_at = time.time()
        server.flavor, server.host = old_flavor, old_host
        server.host_id = self._host_id(server.project_id, old_host)
        server.vm_state = "active"
        server.task_state = None
        server.old_flavor = server.old_host = server.migration = None
        server.touch()
        self._event(record, event, old_host)

    def _end_migration(self, server: Server) -> None:
        """The migration's allocation on the source host goes: confirmed, reverted or deleted."""
        free = getattr(self.cloud.placement, "free", None)
        if server.migration is not None and free is not None:
            free(server.migration.uuid)

    def _migration_deleted(self, server: Server, ids: list[str]) -> None:
        """The server is deleted while it has a migration. The planted bug: a delete landing
        while the resize is in flight leaves the migration's source allocation for good; the
        source's periodic task only reports it (it heals an instance's, not a migration's)."""
        migration = server.migration
        if migration is None:
            return
        if server.task_state is None or not self.cloud.faults.roll("resize-delete-migration-leak"):
            self._end_migration(server)
            return
        source = migration.source_compute
        self.cloud.faults.fired("resize-delete-migration-leak", migration.request_ids + list(ids), server.id,
                                f"DELETE {ids[-1] if ids else ''} of {server.id} raced its resize: migration "
                                f"{migration.uuid} keeps its allocation on {source}", log=f"nova-compute-{source}.log")
        scale = self.cloud.config.delays.build[1] / Delays().build[1]
        self.cloud.later(max(HEAL_INTERVAL * scale, 0.5), self._compute_log(source).write, "INFO",
                         "nova.compute.resource_tracker",
                         f"Instance {migration.uuid} has allocations against this compute host but is not found "
                         "in the database.", LogContext(f"req-{uuid.uuid4()}"))

    def _rebuild(self, call: Call, server: Server, spec) -> Response:
        if not isinstance(spec, dict) or not spec.get("imageRef"):
            raise ApiError(400, f"Invalid input for field/attribute rebuild. Value: {spec!r}. "
                                "'imageRef' is a required property")
        self._conflict(server, "rebuild", ("active", "stopped", "error"))
        image_id = str(spec["imageRef"]).rstrip("/").rpartition("/")[2]
        self._check_image(image_id, server.flavor)
        server.image_id = image_id
        if spec.get("name"):
            server.name = str(spec["name"])
        end_state = "stopped" if server.vm_state == "stopped" else "active"
        self._start(call, server, "rebuild", "rebuilding", "compute_rebuild_instance", self._finish_simple,
                    ActionRule("rebuild", (), "rebuilding", end_state, 4 if end_state == "stopped" else 1,
                               "compute_rebuild_instance", "rebuild"))
        minor = self._minor(call)
        if minor >= 57 and "user_data" in spec:
            server.user_data = spec["user_data"]
        view = self._changed_view(server, minor, self._admin(call), key_name=minor >= 54)
        view["adminPass"] = spec.get("adminPass") or _password()
        if minor >= 57:   # Nova adds it after the view, whatever 2.75 shows
            view["user_data"] = server.user_data
        return Response.json(202, {"server": view})

    # -- security groups of a server's ports (Nova's security_group_api) ------
    def _security_group_ports(self, call: Call, server: Server, spec) -> tuple[dict, list[dict]]:
        if not isinstance(spec, dict):
            raise ApiError(400, "Missing parameter dict")
        if "name" not in spec:
            raise ApiError(400, "Security group not specified")
        name = spec["name"]
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "Security group name cannot be empty")
        network = self.cloud.network
        group = network.find_security_group(call.token.project_id, name) if network is not None else None
        if group is None:
            raise ApiError(404, f"Security group {name} is not found for project {call.token.project_id}")
        ports = network.ports_of(server.id)
        if not ports:
            raise ApiError(404, f"instance_id {server.id} could not be found as device id on any ports")
        return group, ports

    def _add_security_group(self, call: Call, server: Server, spec) -> Response:
        group, ports = self._security_group_ports(call, server, spec)
        for port in ports:
            if group["id"] not in port.setdefault("security_groups", []):
                port["security_groups"].append(group["id"])
        if group["name"] not in server.security_groups:
            server.security_groups.append(group["name"])
        server.touch()
        return Response(202, b"", [], None)

    def _remove_security_group(self, call: Call, server: Server, spec) -> Response:
        group, ports = self._security_group_ports(call, server, spec)
        if not any(group["id"] in port.get("security_groups", ()) for port in ports):
            raise ApiError(404, f"Security group {spec['name']} not associated with the instance {server.id}")
        for port in ports:
            if group["id"] in port.get("security_groups", ()):
                port["security_groups"].remove(group["id"])
        server.security_groups = [name for name in server.security_groups if name != group["name"]]
        server.touch()
        return Response(202, b"", [], None)

    # -- snapshots (createImage) --------------------------------------------
    def _create_image(self, call: Call, server: Server, spec) -> Response:
        """Nova's createImage: the Glance image is made at once (queued); nova-compute snapshots
        and uploads it while the server goes image_snapshot -> image_pending_upload ->
        image_uploading -> None."""
        name, metadata = self._snapshot_spec(spec)
        self._conflict(server, "createImage", SNAPSHOT_VM_STATES)
        image = self._snapshot_image(call, server, name, metadata)
        server.snapshot = (image["id"], call.log_context, call.ids, time.monotonic())
        self._start(call, server, "createImage", "image_snapshot", "compute_snapshot_instance",
                    self._snapshot_pending, image["id"])
        if self._minor(call) >= 45:  # 2.45: the id in the body, no Location header
            return Response.json(202, {"image_id": image["id"]})
        # Nova's glance.generate_image_url: the catalog's image endpoint + /images/<id>
        location = f"{self.cloud.base_url}{self.cloud.image.prefix}/images/{image['id']}"
        return Response(202, b"", [("Location", location)], None)

    def _snapshot_image(self, call: Call, server: Server, name: str, metadata: dict) -> dict:
        """The queued Glance image nova-api makes for a snapshot (createImage, shelve)."""
        base = self.cloud.image.get_image(server.image_id) if server.image_id else None
        base = base or {}
        # what Nova's compute_utils.create_image sends: the request's metadata wins over its own keys;
        # disk and container formats stay unset until the upload says what was written
        properties = {"min_ram": int(base.get("min_ram") or 0),
                      "min_disk": max(int(base.get("min_disk") or 0), server.flavor.disk),
                      "base_image_ref": server.image_id, "instance_uuid": server.id,
                      "user_id": call.token.user_id, "image_type": "snapshot",
                      # Nova records these at boot, from the booting user's token: here the snapshotting user's
                      "owner_user_name": call.token.user_name, "owner_project_name": call.token.project_name,
                      "boot_roles": ",".join(role.name for role in call.token.roles),
                      **server.system_metadata, **metadata}
        return self.cloud.image.create_snapshot(name, server.project_id, properties, call.ids,
                                                user_id=call.token.user_id)

    def _shelve(self, call: Call, server: Server, spec) -> Response:
        """Nova's shelve: nova-api makes the `<name>-shelved` snapshot image first (a volume-backed
        server gets none), the compute uploads it as it offloads; unshelve and delete remove it."""
        rule = ACTIONS["shelve"]
        self._conflict(server, rule.name, rule.vm_states)
        if server.image_id:
            image = self._snapshot_image(call, server, f"{server.name}-shelved", {})
            server.shelved_image = (image["id"], list(call.ids))
        self._start(call, server, rule.instance_action, rule.task_state, rule.event, self._finish_simple, rule)
        return Response(202, b"", [], None)

    def _drop_shelved_image(self, server: Server) -> None:
        """The shelved image goes: the server was unshelved or deleted."""
        if server.shelved_image is not None:
            image_id, ids = server.shelved_image
            server.shelved_image = None
            self.cloud.image.discard_snapshot(image_id, ids)

    @staticmethod
    def _snapshot_spec(spec) -> tuple[str, dict]:
        """(name, metadata) of a createImage body, checked as Nova's JSON schema does."""
        if not isinstance(spec, dict):
            raise ApiError(400, f"Invalid input for field/attribute createImage. Value: {spec!r}. "
                                f"{spec!r} is not of type 'object'")
        if "name" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute createImage. Value: {spec!r}. "
                                "'name' is a required property")
        extra = sorted(key for key in spec if key not in ("name", "metadata"))
        if extra:
            raise ApiError(400, f"Invalid input for field/attribute createImage. Value: {spec!r}. "
                                f"Additional properties are not allowed ({extra[0]!r} was unexpected)")
        name = spec["name"]
        if not isinstance(name, str):
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name!r}. "
                                f"{name!r} is not of type 'string'")
        if not name or len(name) > 255 or name != name.strip():
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}. "
                                f"{name!r} does not match '^(?! )[\\x20-\\x7e]{{1,255}}(?<! )$'")
        metadata = spec.get("metadata", {})
        if not isinstance(metadata, dict) or not all(
                isinstance(key, str) and 0 < len(key) <= 255 and isinstance(value, str) and len(value) <= 255
                for key, value in metadata.items()):
            raise ApiError(400, f"Invalid input for field/attribute metadata. Value: {metadata!r}. "
                                "Metadata keys and values must be strings of at most 255 characters")
        return name, metadata

    def _snapshot_pending(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                          image_id: str) -> None:
        log = self._compute_log(server.host)
        log.write("INFO", "nova.compute.manager", "instance snapshotting", ctx, instance=server.id)
        if server.power_state != 1:
            log.write("WARNING", "nova.compute.manager", "trying to snapshot a non-running instance: "
                      f"(state: {server.power_state} expected: 1)", ctx, instance=server.id)
        if self._snapshot_image_gone(server, record, event, ctx, image_id):
            return
        if not self.cloud.config.snapshots_finish:
            # Nova's fake virt driver: the snapshot "succeeds" and nothing is ever uploaded
            server.snapshot = None
            server.task_state = None
            server.touch()
            self._event(record, event, server.host)
            return
        server.task_state = "image_pending_upload"
        server.touch()
        self._after(server, self.cloud.delay("action"), self._snapshot_upload, server, record, event, ctx,
                    image_id)

    def _snapshot_upload(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                         image_id: str) -> None:
        if self._snapshot_image_gone(server, record, event, ctx, image_id):
            return
        server.task_state = "image_uploading"
        server.touch()
        self.cloud.image.snapshot_saving(image_id)
        self._after(server, self.cloud.delay("action"), self._snapshot_done, server, record, event, ctx,
                    image_id)

    def _snapshot_done(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                       image_id: str) -> None:
        if self._snapshot_image_gone(server, record, event, ctx, image_id):
            return
        base = self.cloud.image.data.get(server.image_id, b"") if server.image_id else b""
        ids = server.snapshot[2] if server.snapshot else []
        self.cloud.image.snapshot_uploaded(image_id, server.id.encode() + base, ids)
        started = server.snapshot[3] if server.snapshot else time.monotonic()
        self._compute_log(server.host).write(
            "INFO", "nova.compute.manager", f"Took {time.monotonic() - started:0.2f} seconds to snapshot "
            "the instance on the hypervisor.", ctx, instance=server.id)
        server.snapshot = None
        server.task_state = None
        server.touch()
        self._event(record, event, server.host)

    def _snapshot_image_gone(self, server: Server, record: InstanceAction, event: str, ctx: LogContext,
                             image_id: str) -> bool:
        """The image was deleted in Glance mid-snapshot: Nova gives up and clears the task state."""
        if self.cloud.image.get_image(image_id) is not None:
            return False
        self._compute_log(server.host).write("WARNING", "nova.compute.manager", "Image not found during snapshot",
                                             ctx, instance=server.id)
        server.snapshot = None
        server.task_state = None
        server.touch()
        self._event(record, event, server.host)
        return True

    def _snapshot_disappeared(self, server: Server, host: str | None) -> None:
        """The server was deleted mid-snapshot: nova-compute deletes the partial image."""
        image_id, ctx, ids, _started = server.snapshot
        server.snapshot = None
        image = self.cloud.image.get_image(image_id)
        if image is None or image["status"] == "active":
            return
        self._compute_log(host).write("WARNING", "nova.compute.manager", "Instance disappeared during snapshot",
                                      ctx, instance=server.id)
        self.cloud.image.discard_snapshot(image_id, ids)

    # -- volume attachments ------------------------------------------------
    def _attachment_view(self, attachment: dict, minor: int) -> dict:
        view = {"device": attachment["device"], "serverId": attachment["serverId"],
                "volumeId": attachment["volumeId"]}
        if minor < 89:
            view["id"] = attachment["volumeId"]
        if minor >= 70:
            view["tag"] = attachment.get("tag")
        if minor >= 79:
            view["delete_on_termination"] = attachment.get("delete_on_termination", False)
        if minor >= 89:
            view["attachment_id"] = attachment["attachment_id"]
            view["bdm_uuid"] = attachment["bdm_uuid"]
        return view

    def list_attachments(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        minor = self._minor(call)
        return Response.json(200, {"volumeAttachments": [self._attachment_view(a, minor)
                                                         for a in server.volumes.values()]})

    def show_attachment(self, call: Call, server_id: str, volume_id: str) -> Response:
        server = self._server(call, server_id)
        attachment = server.volumes.get(volume_id)
        if attachment is None:
            raise ApiError(404, f"Instance {server_id} is not attached to volume {volume_id}")
        return Response.json(200, {"volumeAttachment": self._attachment_view(attachment, self._minor(call))})

    def attach_volume(self, call: Call, server_id: str) -> Response:
        server = self._server(call, server_id)
        spec = self._body(call, "volumeAttachment")
        volume_id = spec.get("volumeId")
        if not volume_id:
            raise ApiError(400, f"Invalid input for field/attribute volumeAttachment. Value: {spec!r}. "
                                "'volumeId' is a required property")
        self._check_locked(call, server)
        self._conflict(server, "attach_volume", ("active", "paused", "stopped", "suspended", "resized",
                                                 "shelved", "shelved_offloaded"))
        volume_api = self.cloud.volume
        get_volume = getattr(volume_api, "get_volume", None)
        if get_volume is None or get_volume(volume_id) is None:
            raise ApiError(404, f"Volume {volume_id} could not be found.")
        if volume_id in server.volumes or volume_id in server.attaching:
            raise ApiError(400, f"Invalid volume: volume {volume_id} already attached")
        try:
            volume_api.reserve(volume_id, server.id, call.ids)
        except ValueError as exc:
            message = str(exc)
            raise ApiError(400, message if message.startswith("Invalid volume") else
                           f"Invalid volume: {message}") from None
        used = {a["device"] for a in server.volumes.values()} | {a["device"] for _, _, a in
                                                                  server.attaching.values()}
        device = spec.get("device") or next(f"/dev/vd{letter}" for letter in string.ascii_lowercase[1:]
                                            if f"/dev/vd{letter}" not in used)
        attachment = {"device": device, "serverId": server.id, "volumeId": volume_id,
                      "tag": spec.get("tag"), "delete_on_termination": bool(spec.get("delete_on_termination")),
                      "attachment_id": str(uuid.uuid4()), "bdm_uuid": str(uuid.uuid4()),
                      "_context": call.log_context, "_ids": call.ids}  # the attach's, for its log lines
        record = self._record_action(call, server, "attach_volume")
        server.attaching[volume_id] = (call.log_context, call.ids, attachment)
        self.cloud.later(self.cloud.delay("volume"), self._attached, server, volume_id, record)
        return Response.json(200, {"volumeAttachment": self._attachment_view(attachment, self._minor(call))})

    def _attached(self, server: Server, volume_id: str, record: InstanceAction) -> None:
        ctx, ids, attachment = server.attaching.pop(volume_id)
        volume_api = self.cloud.volume
        if server.deleted or server.task_state == "deleting":
            if volume_id in server.leaked_volumes:
                volume_api.attach(volume_id, server.id, attachment["device"], server.host or "", ids)
                server.volumes[volume_id] = attachment
                if server.deleted:
                    self._leak_volume(server, volume_id)
                return
            volume_api.unreserve(volume_id, ids)
            self._compute_log(server.host).write(
                "WARNING", "nova.compute.manager", f"Attaching volume {volume_id} aborted: the instance is "
                "being deleted", ctx, instance=server.id)
            self._event(record, "compute_attach_volume", server.host, "Error", None, "InstanceNotFound")
            return
        volume_api.attach(volume_id, server.id, attachment["device"], server.host or "", ids)
        server.volumes[volume_id] = attachment
        server.touch()
        self._guest_sync(server)
        self._event(record, "compute_attach_volume", server.host)

    def _leak_volume(self, server: Server, volume_id: str) -> None:
        """The planted bug: the volume stays attached to a server that is gone."""
        server.leaked_volumes.discard(volume_id)
        attachment = server.volumes[volume_id]
        attach_ctx, attach_ids = attachment["_context"], attachment["_ids"]
        delete_ctx, delete_ids = server.leak_context or (None, [])
        text = f"Instance {server.id} could not be found."
        traceback = ["Traceback (most recent call last):"] + ATTACH_FRAMES + [
            f"nova.exception.InstanceNotFound: {text}"]
        log = self._compute_log(server.host)
        log.write("ERROR", "nova.compute.manager",
                  f"Failed to attach {volume_id} at {server.volumes[volume_id]['device']}: "
                  f"nova.exception.InstanceNotFound: {text}", attach_ctx, instance=server.id, traceback=traceback)
        log.write("ERROR", "nova.compute.manager",
                  f"Volume {volume_id} is still attached after the instance was deleted; it was not detached",
                  delete_ctx, instance=server.id)
        self.cloud.faults.fired("attach-during-delete", attach_ids + list(delete_ids), server.id,
                                f"volume {volume_id} left in-use, attached to deleted server {server.id}",
                                log=f"nova-compute-{server.host or self.cloud.compute_hosts[0]}.log")

    def detach_volume(self, call: Call, server_id: str, volume_id: str) -> Response:
        server = self._server(call, server_id)
        self._check_locked(call, server)
        if volume_id not in server.volumes:
            raise ApiError(404, f"volume_id not found: {volume_id}")
        self._conflict(server, "detach_volume", ("active", "paused", "stopped", "suspended", "resized",
                                                 "shelved", "shelved_offloaded"))
        record = self._record_action(call, server, "detach_volume")
        begin = getattr(self.cloud.volume, "begin_detaching", None)
        if begin is not None:
            begin(volume_id, call.ids)
        ids = call.ids

        def detached() -> None:
            if server.volumes.pop(volume_id, None) is not None:
                self.cloud.volume.detach(volume_id, server.id, ids)
                server.touch()
                self._guest_sync(server)
                self._event(record, "compute_detach_volume", server.host)
        self.cloud.later(self.cloud.delay("volume"), detached)
        return Response(202, b"", [], None)

    # -- instance actions --------------------------------------------------
    def _action_view(self, record: InstanceAction, server: Server, minor: int) -> dict:
        view = {"action": record.action, "instance_uuid": server.id, "request_id": record.request_id,
                "user_id": record.user_id, "project_id": record.project_id,
                "start_time": _db_time(record.start_time), "message": record.message}
        if minor >= 58:
            view["updated_at"] = _db_time(record.updated_at)
        return view

    def _actions_server(self, call: Call, server_id: str) -> Server:
        """The server whose actions are read: from 2.21 a deleted one too (while it is kept)."""
        gone = self.deleted.get(server_id)
        if gone is not None and self._minor(call) >= 21 and (
                gone.project_id == call.token.project_id or self._admin(call)):
            return gone
        return self._server(call, server_id)

    def list_instance_actions(self, call: Call, server_id: str) -> Response:
        server = self._actions_server(call, server_id)
        minor = self._minor(call)
        records = list(reversed(server.actions))
        marker = call.request.arg("marker")
        if marker and minor >= 58:
            position = next((i for i, r in enumerate(records) if r.request_id == marker), None)
            if position is None:
                raise ApiError(400, f"Marker {marker} could not be found.")
            records = records[position + 1:]
        limit_text = call.request.arg("limit") if minor >= 58 else None
        body: dict = {}
        if limit_text is not None:
            limit = max(0, int(limit_text)) if limit_text.isdigit() else MAX_LIMIT
            more = len(records) > limit
            records = records[:limit]
            if more and records:
                body["links"] = [{"rel": "next", "href": f"{self._base}/v2.1/servers/{server.id}/"
                                  f"os-instance-actions?limit={limit}&marker={records[-1].request_id}"}]
        body = {"instanceActions": [self._action_view(r, server, minor) for r in records], **body}
        return Response.json(200, body)

    def show_instance_action(self, call: Call, server_id: str, request_id: str) -> Response:
        server = self._actions_server(call, server_id)
        minor = self._minor(call)
        admin = self._admin(call)
        record = next((r for r in server.actions if r.request_id == request_id), None)
        if record is None:
            raise ApiError(404, f"Action for request_id {request_id} on instance {server_id} not found")
        view = self._action_view(record, server, minor)
        events = []
        for event in record.events:
            item = {"event": event["event"], "start_time": _db_time(event["start_time"]),
                    "finish_time": _db_time(event["finish_time"]), "result": event["result"]}
            if admin:
                item["traceback"] = event["traceback"]
            if minor >= 62:
                if admin:
                    item["host"] = event["host"] or ""
                item["hostId"] = self._host_id(server.project_id, event["host"])
            if minor >= 84 and (admin or event["details"]):
                item["details"] = event["details"]
            events.append(item)
        view["events"] = events
        return Response.json(200, {"instanceAction": view})

    # -- keypairs ----------------------------------------------------------
    def _keypair_owner(self, call: Call) -> str:
        user_id = call.request.arg("user_id")
        if user_id and self._minor(call) >= 10:
            self._policy(call, "os_compute_api:os-keypairs:index")
            return user_id
        return call.token.user_id

    def _keypair(self, call: Call, name: str) -> Keypair:
        user_id = self._keypair_owner(call)
        keypair = self.keypairs.get(user_id, {}).get(name)
        if keypair is None:
            raise ApiError(404, f"Keypair {name} not found for user {user_id}")
        return keypair

    def create_keypair(self, call: Call) -> Response:
        minor = self._minor(call)
        spec = self._body(call, "keypair")
        name = spec.get("name")
        if "name" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute keypair. Value: {spec!r}. "
                                "'name' is a required property")
        # Nova's schema: 1 to 255 of these characters (2.92 adds '@' and '.'), no space at either end
        allowed = r"^[_\-\@\. a-zA-Z0-9]+$" if minor >= 92 else r"^[_\- a-zA-Z0-9]+$"
        if not isinstance(name, str) or not re.match(allowed, name) or len(name) > 255 or name != name.strip():
            problem = (f"{name!r} is too long" if isinstance(name, str) and len(name) > 255
                       else f"{name!r} does not match '{allowed}'")
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name}. {problem}")
        public_key = spec.get("public_key")
        if minor >= 92 and "public_key" not in spec:
            raise ApiError(400, f"Invalid input for field/attribute keypair. Value: {spec!r}. "
                                "'public_key' is a required property")
        if public_key is not None and not isinstance(public_key, str):
            raise ApiError(400, f"Invalid input for field/attribute public_key. Value: {public_key}. "
                                f"{public_key!r} is not of type 'string'")
        user_id = call.token.user_id
        if spec.get("user_id") and minor >= 10:
            self._policy(call, "os_compute_api:os-keypairs:create")
            user_id = spec["user_id"]
        owned = self.keypairs.setdefault(user_id, {})
        # Nova's order: the quota, then the key itself, then the name's uniqueness (the insert)
        if len(owned) >= self._limits(call.token.project_id)["key_pairs"]:
            raise ApiError(403, "Quota exceeded, too many key pairs.")
        private_key = None
        if public_key is None:
            private_key, public_key = _generate_keypair()
        try:
            fingerprint = _fingerprint(public_key)
        except ValueError:
            raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint") from None
        if name in owned:
            raise ApiError(409, f"Key pair '{name}' already exists.")
        self._keypair_counter += 1
        keypair = Keypair(self._keypair_counter, name, user_id, public_key.strip(), fingerprint,
                          spec.get("type", "ssh") if minor >= 2 else "ssh", time.time())
        owned[name] = keypair
        view = {}
        if private_key:
            view["private_key"] = private_key
        if minor >= 2:
            view["type"] = keypair.type
        view.update({"name": name, "public_key": keypair.public_key, "fingerprint": fingerprint,
                     "user_id": user_id})
        return Response.json(201 if minor >= 2 else 200, {"keypair": view})

    def list_keypairs(self, call: Call) -> Response:
        minor = self._minor(call)
        user_id = self._keypair_owner(call)
        keypairs = sorted(self.keypairs.get(user_id, {}).values(), key=lambda k: k.name)
        items = []
        for keypair in keypairs:
            view = {"name": keypair.name, "public_key": keypair.public_key,
                    "fingerprint": keypair.fingerprint}
            if minor >= 2:
                view["type"] = keypair.type
            items.append({"keypair": view})
        return Response.json(200, {"keypairs": items})

    def show_keypair(self, call: Call, name: str) -> Response:
        keypair = self._keypair(call, name)
        view = {"name": keypair.name, "public_key": keypair.public_key, "fingerprint": keypair.fingerprint,
                "user_id": keypair.user_id, "created_at": now_iso(keypair.created_at, micro=True),
                "deleted": False, "deleted_at": None, "id": keypair.id, "updated_at": None}
        if self._minor(call) >= 2:
            view["type"] = keypair.type
        return Response.json(200, {"keypair": view})

    def delete_keypair(self, call: Call, name: str) -> Response:
        keypair = self._keypair(call, name)
        del self.keypairs[keypair.user_id][name]
        return Response(202 if self._minor(call) < 2 else 204, b"", [], None)

    # -- services, hypervisors, migrations, zones ---------------------------
    def _services(self) -> list[tuple[int, str, str, str]]:
        """(id, binary, host, zone) of every Nova service of the cloud."""
        services = [(1, "nova-scheduler", "controller", "internal"),
                    (2, "nova-conductor", "controller", "internal")]
        services += [(3 + n, "nova-compute", host, "nova") for n, host in enumerate(self.cloud.compute_hosts)]
        return services

    @staticmethod
    def _service_uuid(binary: str, host: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{binary}.{host}"))

    def list_services(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-services:list")
        minor = self._minor(call)
        binary = call.request.arg("binary")
        host_filter = call.request.arg("host")
        services = []
        for number, name, host, zone in self._services():
            if (binary and binary != name) or (host_filter and host_filter != host):
                continue
            heartbeat, up = self.cloud.processes.heartbeat(name, host)
            view = {"binary": name, "host": host,
                    "id": self._service_uuid(name, host) if minor >= 53 else number,
                    "zone": zone, "status": "enabled", "state": "up" if up else "down",
                    "updated_at": now_iso(heartbeat, micro=True), "disabled_reason": None}
            if minor >= 11:
                view["forced_down"] = False
            services.append(view)
        return Response.json(200, {"services": services})

    def _hypervisor_view(self, number: int, host: str, minor: int, detail: bool) -> dict:
        view = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"hypervisor:{host}")) if minor >= 53 else number,
                "hypervisor_hostname": host, "state": "up", "status": "enabled"}
        if not detail:
            return view
        used = self.host_usage.get(host, {})
        config = self.cloud.config
        view.update({"hypervisor_type": "fake", "hypervisor_version": 1000, "host_ip": "127.0.0.1",
                     "service": {"id": self._service_uuid("nova-compute", host) if minor >= 53 else number + 2,
                                 "host": host, "disabled_reason": None}})
        if minor >= 88:
            view["uptime"] = None
            return view
        ram_used = used.get("MEMORY_MB", 0) + 512
        disk_used = used.get("DISK_GB", 0)
        view.update({"vcpus": config.host_capacity_vcpus, "memory_mb": config.host_capacity_ram_mb,
                     "local_gb": 100000, "vcpus_used": used.get("VCPU", 0), "memory_mb_used": ram_used,
                     "local_gb_used": disk_used, "free_ram_mb": config.host_capacity_ram_mb - ram_used,
                     "free_disk_gb": 100000 - disk_used, "current_workload": 0,
                     "running_vms": used.get("instances", 0), "disk_available_least": 0,
                     "cpu_info": {"arch": "x86_64", "model": "Nehalem", "vendor": "Intel",
                                  "features": ["pge", "clflush"],
                                  "topology": {"cores": 1, "threads": 1, "sockets": 4}}})
        return view

    def list_hypervisors(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-hypervisors:list")
        minor = self._minor(call)
        return Response.json(200, {"hypervisors": [self._hypervisor_view(n + 1, host, minor, False)
                                                   for n, host in enumerate(self.cloud.compute_hosts)]})

    def list_hypervisors_detail(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-hypervisors:list-detail")
        minor = self._minor(call)
        return Response.json(200, {"hypervisors": [self._hypervisor_view(n + 1, host, minor, True)
                                                   for n, host in enumerate(self.cloud.compute_hosts)]})

    def show_hypervisor(self, call: Call, hypervisor_id: str) -> Response:
        self._policy(call, "os_compute_api:os-hypervisors:show")
        minor = self._minor(call)
        for number, host in enumerate(self.cloud.compute_hosts, start=1):
            view = self._hypervisor_view(number, host, minor, True)
            if str(view["id"]) == hypervisor_id:
                return Response.json(200, {"hypervisor": view})
        raise ApiError(404, f"Hypervisor with ID '{hypervisor_id}' could not be found.")

    def list_migrations(self, call: Call) -> Response:
        self._policy(call, "os_compute_api:os-migrations:index")
        minor = self._minor(call)
        instance = call.request.arg("instance_uuid")
        migrations = []
        for migration in reversed(self.migrations):
            if instance and migration.instance_uuid != instance:
                continue
            view = {"id": migration.id}
            if minor >= 59:
                view["uuid"] = migration.uuid
            view.update({"source_compute": migration.source_compute, "dest_compute": migration.dest_compute,
                         "source_node": migration.source_compute, "dest_node": migration.dest_compute,
                         "dest_host": "127.0.0.1", "old_instance_type_id": migration.old_flavor.internal_id,
                         "new_instance_type_id": migration.new_flavor.internal_id,
                         "instance_uuid": migration.instance_uuid, "status": migration.status})
            if minor >= 23:
                view["migration_type"] = "resize"
            if minor >= 80:
                view["user_id"] = migration.user_id
                view["project_id"] = migration.project_id
            view["created_at"] = now_iso(migration.created_at, micro=True)
            view["updated_at"] = now_iso(migration.updated_at, micro=True)
            migrations.append(view)
        return Response.json(200, {"migrations": migrations})

    def availability_zones(self, call: Call) -> Response:
        return Response.json(200, {"availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}]})

    # -- server groups -----------------------------------------------------
    def _group_view(self, group: ServerGroup, minor: int) -> dict:
        view = {"id": group.id, "name": group.name}
        if minor >= 64:
            view.update({"policy": group.policy, "rules": dict(group.rules)})
        else:
            view.update({"policies": [group.policy], "metadata": {}})
        view["members"] = list(group.members)
        if minor >= 13:
            view.update({"project_id": group.project_id, "user_id": group.user_id})
        return view

    def _group(self, call: Call, group_id: str) -> ServerGroup:
        group = self.server_groups.get(group_id)
        if group is None or (group.project_id != call.token.project_id and not self._admin(call)):
            raise ApiError(404, f"Instance group {group_id} could not be found.")
        return group

    def create_server_group(self, call: Call) -> Response:
        minor = self._minor(call)
        spec = self._body(call, "server_group")
        name = spec.get("name")
        if minor >= 64:
            policy = spec.get("policy")
        else:
            policies = spec.get("policies") or []
            policy = policies[0] if isinstance(policies, list) and len(policies) == 1 else None
        if not name or policy not in ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"):
            raise ApiError(400, f"Invalid input for field/attribute server_group. Value: {spec!r}.")
        project_id = call.token.project_id
        if sum(1 for g in self.server_groups.values() if g.project_id == project_id) >= \
                self._limits(project_id)["server_groups"]:
            raise ApiError(403, "Quota exceeded, too many server groups.")
        group = ServerGroup(str(uuid.uuid4()), str(name), policy, project_id, call.token.user_id,
                            dict(spec.get("rules") or {}))
        self.server_groups[group.id] = group
        return Response.json(200, {"server_group": self._group_view(group, minor)})

    def list_server_groups(self, call: Call) -> Response:
        minor = self._minor(call)
        everyone = self._admin(call) and call.request.arg("all_projects") not in (None, "0", "false")
        groups = [g for g in self.server_groups.values() if everyone or g.project_id == call.token.project_id]
        return Response.json(200, {"server_groups": [self._group_view(g, minor) for g in groups]})

    def show_server_group(self, call: Call, group_id: str) -> Response:
        return Response.json(200, {"server_group": self._group_view(self._group(call, group_id),
                                                                    self._minor(call))})

    def delete_server_group(self, call: Call, group_id: str) -> Response:
        group = self._group(call, group_id)
        del self.server_groups[group.id]
        return Response(204, b"", [], None)


def _pattern(text: str) -> re.Pattern:
    """A list filter's regular expression; one that does not compile is taken literally."""
    try:
        return re.compile(text)
    except re.error:
        return re.compile(re.escape(text))


def _password() -> str:
    """A new admin password, as Nova's utils.generate_password makes them (12 characters)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))


def _strict_bool(text: str, message: str) -> bool:
    """oslo's bool_from_string(strict=True): its true and false words, anything else a 400."""
    word = text.strip().lower()
    if word in ("1", "t", "true", "on", "y", "yes"):
        return True
    if word in ("0", "f", "false", "off", "n", "no"):
        return False
    raise ApiError(400, message)


def _db_time(stamp: float) -> str:
    """A time as Nova shows it from a MySQL/MariaDB database (instance actions, launched_at,
    terminated_at), whose DATETIME columns keep no fraction: whole seconds, ".000000"."""
    return now_iso(float(int(stamp)), micro=True)


def _overlapped(peer: Server, server: Server) -> bool:
    """Whether two boots' scheduling overlapped: accepted within RACE_WINDOW of each other, or
    `server` accepted while `peer` was still being scheduled."""
    placed = peer.handed_to_compute if peer.handed_to_compute is not None else peer.scheduled_at
    return abs(peer.scheduled_at - server.scheduled_at) <= RACE_WINDOW or server.scheduled_at <= placed
