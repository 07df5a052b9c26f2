"""Volume actions (Tempest's volume_create_delete, volume_attach_delete, volume_attach_verify)."""
from __future__ import annotations

import re
from contextlib import closing, nullcontext

from ..user import NovaUser
from . import Needs, stress_action
from .floating import GuestError, GuestShell, guest_ports, ssh_shell, until
from .servers import boot_args, kept

VOLUME = ("compute", "block-storage")


@stress_action(tempest=("tempest.stress.actions.volume_create_delete.VolumeCreateDeleteTest",
                        "tempest.stress.actions.volume_create_delete.CreateDeleteTest"),
               services=("block-storage",), types=("volume", "smoke"))
def volume_create_delete(user: NovaUser, *, size: int = 1) -> None:
    """Create a volume, wait available, delete it, wait until it is gone."""
    volume = user.create_volume(size)
    user.delete_volume(volume)


@stress_action(tempest=("tempest.stress.actions.volume_attach_delete.VolumeAttachDeleteTest",),
               services=VOLUME, types=("volume",))
def volume_attach_delete(user: NovaUser, *, size: int = 1) -> None:
    """Volume + server, attach, wait in-use, delete the server *without detaching*, delete the volume.

    Deleting a server with a volume still attached is the race this probes: the volume must
    come back available (and deletable) once the server is gone.
    """
    volume = user.create_volume(size)
    server = user.boot_server()
    user.attach_volume(server, volume)
    user.delete_server(server)
    with user.atomic("wait_volume_released"):
        user.wait_volume(volume, "available", user.options.delete_timeout)
    user.delete_volume(volume)


def _part_wait(user: NovaUser, shell: GuestShell, pattern: re.Pattern, count: int, what: str) -> None:
    """Wait until `count` lines of the guest's /proc/partitions match (Tempest's part_wait)."""
    seen: list[str] = []

    def matching() -> bool:
        seen[:] = shell.run("cat /proc/partitions").split("\n")
        return sum(1 for line in seen[1:] if pattern.match(line)) == count

    with user.atomic(f"verify_{what}"):
        try:
            until(f"/proc/partitions never had {count} lines matching {pattern.pattern!r}",
                  matching, user.options.build_timeout, user.options.status_poll_interval)
        except GuestError as exc:
            disks = [line.split()[-1] for line in seen[2:] if line.strip()]
            raise GuestError(f"{exc} (disks: {', '.join(disks) or 'none'})") from None


def _validate_verify(kwargs: dict) -> str | None:
    try:
        re.compile(kwargs.get("part_line_re", ".*vd.*"))
    except re.error as exc:
        return f"kwarg 'part_line_re' is not a regular expression: {exc}"
    return None


@stress_action(tempest=("tempest.stress.actions.volume_attach_verify.VolumeVerifyStress",),
               services=("compute", "block-storage", "network"), types=("volume", "network"),
               validate=_validate_verify, needs=Needs(floating_ip=True))
def volume_attach_verify(user: NovaUser, *, vm_extra_args: dict = {},  # noqa: B006 (read only)
                         floating_pool: str | None = None, new_volume: bool = True, new_server: bool = False,
                         enable_ssh_verify: bool = True, ssh_test_before_attach: bool = False,
                         part_line_re: str = ".*vd.*", detach_match_count: int = 1,
                         attach_match_count: int = 2, part_name: str = "/dev/vdc") -> None:
    """Attach a volume, see it appear in the guest's /proc/partitions over SSH, detach, see it go."""
    pattern = re.compile(part_line_re)
    ports = guest_ports(user)
    fip = kept(user, "attach_verify.fip", lambda: user.allocate_floating_ip(floating_pool), name_key="description")
    group = kept(user, "attach_verify.secgroup", lambda: user.create_security_group(ports))
    keypair = kept(user, "attach_verify.keypair", user.create_keypair)

    def new_server_ops() -> dict:
        server = user.boot_server(**boot_args(vm_extra_args, group, keypair))
        user.associate_floating_ip(fip, server)
        if ssh_test_before_attach and enable_ssh_verify:
            with closing(ssh_shell(user, fip["floating_ip_address"], keypair)) as shell:
                _part_wait(user, shell, pattern, detach_match_count, "before_attach")
        return server

    server = new_server_ops() if new_server else kept(user, "attach_verify.server", new_server_ops)
    volume = user.create_volume() if new_volume else kept(user, "attach_verify.volume", user.create_volume)
    with closing(ssh_shell(user, fip["floating_ip_address"], keypair)) if enable_ssh_verify else nullcontext() as shell:
        user.attach_volume(server, volume, part_name or None)
        if shell is not None:
            _part_wait(user, shell, pattern, attach_match_count, "attach")
        user.detach_volume(server, volume)
        if shell is not None:
            _part_wait(user, shell, pattern, detach_match_count, "detach")
    if new_volume:
        user.delete_volume(volume)
    if new_server:
        user.disassociate_floating_ip(fip)
        user.delete_server(server)
