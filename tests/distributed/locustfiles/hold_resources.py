"""Every user holds one resource of each kind while its server boots; a test freezes the boot.

A keypair, a security group, a volume and a floating IP, then a server: with the embedded
cloud's `freeze` chaos rule on the run's names, the boot never ends and the user holds them
all until it is stopped (or its process killed).
"""
from novastress_locust.user import NovaUser, action


@action
def hold_every_kind(user: NovaUser) -> None:
    keypair = user.create_keypair()
    group = user.create_security_group()
    volume = user.create_volume()
    floating_ip = user.allocate_floating_ip()
    server = user.boot_server()
    user.delete_server(server)
    user.release_floating_ip(floating_ip)
    user.delete_volume(volume)
    user.delete_security_group(group)
    user.delete_keypair(keypair)


class HoldEveryKind(NovaUser):
    threads = 2
    tasks = [hold_every_kind]
