"""The records of the embedded cloud's Nova: flavors, servers, instance actions, migrations,
keypairs and server groups; Nova's status of a server's (vm_state, task_state); the server
actions that only change states (`ACTIONS`); and the small helpers the compute modules share.

Plain dataclasses: `Compute` (compute.py) keeps them in its dicts and changes them; nothing
here talks to the rest of the cloud.
"""
from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field

from .logs import LogContext
from .service import now_iso

MAX_LIMIT = 1000
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


def _password() -> str:
    """A new admin password, as Nova's utils.generate_password makes them (12 characters)."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(12))


def _db_time(stamp: float) -> str:
    """A time as Nova shows it from a MySQL/MariaDB database (instance actions, launched_at,
    terminated_at), whose DATETIME columns keep no fraction: whole seconds, ".000000"."""
    return now_iso(float(int(stamp)), micro=True)
