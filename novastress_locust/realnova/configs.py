"""The configuration files of the real-Nova stack, as text (one function per service).

    files = render(layout, secrets, hosts=["compute-1", "compute-2"])
    files["etc/nova/nova.conf"]       # -> "[DEFAULT]\ntransport_url = rabbit://..."

Everything listens on 127.0.0.1 and uses the stack's own MariaDB and RabbitMQ. Values
follow what a working set-up of Nova 34 with the fake virt driver needs (see the README's
"A real Nova on this machine").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Ports:
    """Where each service listens (all on 127.0.0.1): below the kernel's ephemeral range (32768
    and up), where an outgoing connection of the busy machine could hold the port when a service
    starts (RabbitMQ once failed to listen on 35672 so: eaddrinuse)."""

    keystone: int = 5000
    placement: int = 8778
    glance: int = 9292
    neutron: int = 9696
    nova_api: int = 8774
    cinder: int = 8776
    mariadb: int = 13306
    rabbitmq: int = 15682
    rabbitmq_dist: int = 15683


def auth_url(ports: Ports) -> str:
    return f"http://{HOST}:{ports.keystone}/v3"


def _service_auth(section: str, ports: Ports, username: str, password: str,
                  www_authenticate: bool = False) -> str:
    """A keystoneauth password section for a service user of project `service`."""
    lines = [f"[{section}]"]
    if www_authenticate:
        lines.append(f"www_authenticate_uri = {auth_url(ports)}")
    lines += [f"auth_url = {auth_url(ports)}", "auth_type = password",
              "project_domain_name = Default", "user_domain_name = Default",
              "region_name = RegionOne", "project_name = service",
              f"username = {username}", f"password = {password}", ""]
    return "\n".join(lines)


def _database(ports: Ports, secrets: dict, name: str) -> str:
    return f"mysql+pymysql://os:{secrets['database']}@{HOST}:{ports.mariadb}/{name}"


def _transport(ports: Ports) -> str:
    return f"rabbit://guest:guest@{HOST}:{ports.rabbitmq}/"


def keystone(root: Path, ports: Ports, secrets: dict) -> str:
    return f"""[DEFAULT]
log_file = {root}/logs/keystone.log
[database]
connection = {_database(ports, secrets, 'keystone')}
[token]
provider = fernet
expiration = 86400
[fernet_tokens]
key_repository = {root}/etc/keystone/fernet-keys
[fernet_receipts]
key_repository = {root}/etc/keystone/fernet-keys
[credential]
key_repository = {root}/etc/keystone/credential-keys
"""


def placement(root: Path, ports: Ports, secrets: dict) -> str:
    return f"""[DEFAULT]
log_file = {root}/logs/placement.log
[placement_database]
connection = {_database(ports, secrets, 'placement')}
[api]
auth_strategy = keystone
""" + _service_auth("keystone_authtoken", ports, "placement", secrets["placement"], True) + """memcached_servers =
service_token_roles_required = true
"""


def glance(root: Path, ports: Ports, secrets: dict) -> str:
    return f"""[DEFAULT]
log_file = {root}/logs/glance-api.log
worker_self_reference_url = http://{HOST}:{ports.glance}
enabled_backends = fs:file
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {root}/data/glance/images
[os_glance_staging_store]
filesystem_store_datadir = {root}/data/glance/staging
[os_glance_tasks_store]
filesystem_store_datadir = {root}/data/glance/tasks
[database]
connection = {_database(ports, secrets, 'glance')}
[paste_deploy]
flavor = keystone
config_file = {root}/etc/glance/glance-api-paste.ini
""" + _service_auth("keystone_authtoken", ports, "glance", secrets["glance"], True)


def neutron(root: Path, ports: Ports, secrets: dict) -> str:
    # API only: ML2 with no mechanism drivers and no agents. port_forwarding is loaded so
    # that SQLAlchemy's Port mapper is complete (see serve.py).
    return f"""[DEFAULT]
log_file = {root}/logs/neutron-server.log
bind_host = {HOST}
bind_port = {ports.neutron}
core_plugin = ml2
service_plugins = router,port_forwarding
auth_strategy = keystone
api_paste_config = {root}/etc/neutron/api-paste.ini
transport_url = {_transport(ports)}
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
[database]
connection = {_database(ports, secrets, 'neutron')}
[oslo_concurrency]
lock_path = {root}/data/neutron-locks
""" + _service_auth("keystone_authtoken", ports, "neutron", secrets["neutron"], True)


ML2 = """[ml2]
type_drivers = flat,local
tenant_network_types = local
mechanism_drivers =
extension_drivers =
"""


def nova(root: Path, ports: Ports, secrets: dict, host: str, with_database: bool,
         log_file: str | None = None) -> str:
    """nova.conf for the controller services (with_database) or one compute host (without:
    nova-compute logs "No DB access allowed" traces when it is given a database)."""
    state = f"{root}/data/nova-{host}" if not with_database else f"{root}/data/nova"
    text = f"""[DEFAULT]
transport_url = {_transport(ports)}
compute_driver = novastress_fake.StableFakeDriver
host = {host}
my_ip = {HOST}
log_dir = {root}/logs
state_path = {state}
instances_path = {state}/instances
debug = false
"""
    if log_file:
        text += f"log_file = {log_file}\n"
    if with_database:
        text += f"""[api_database]
connection = {_database(ports, secrets, 'nova_api')}
[database]
connection = {_database(ports, secrets, 'nova')}
"""
    text += f"""[api]
auth_strategy = keystone
[wsgi]
api_paste_config = {root}/etc/nova/api-paste.ini
[oslo_concurrency]
lock_path = {state}/locks
[scheduler]
discover_hosts_in_cells_interval = 30
[quota]
instances = 10000
cores = 100000
ram = 100000000
[vnc]
enabled = false
[glance]
region_name = RegionOne
"""
    text += _service_auth("keystone_authtoken", ports, "nova", secrets["nova"], True)
    text += _service_auth("service_user", ports, "nova", secrets["nova"]).replace(
        "[service_user]\n", "[service_user]\nsend_service_user_token = true\n")
    text += _service_auth("placement", ports, "placement", secrets["placement"])
    text += _service_auth("neutron", ports, "neutron", secrets["neutron"])
    # the same with or without Cinder in the shape, so adding it needs no restart of Nova;
    # the credentials serve calls made without a user's token (cleaning up a failed build)
    text += _service_auth("cinder", ports, "nova", secrets["nova"]).replace(
        "region_name = RegionOne\n", "os_region_name = RegionOne\n")
    return text


def cinder(root: Path, ports: Ports, secrets: dict) -> str:
    """cinder.conf for cinder-api, -scheduler and -volume: one backend that stores nothing
    (noop_volume.py). The daemons log to logs/<their name>.log, cinder-api as cinder-api.conf
    says (its process is serve.py); api-paste.ini is found next to this file, and
    resource_filters.json is copied there from the virtualenv as api-paste.ini is."""
    return f"""[DEFAULT]
transport_url = {_transport(ports)}
log_dir = {root}/logs
state_path = {root}/data/cinder
host = realnova
my_ip = {HOST}
auth_strategy = keystone
enabled_backends = noop
# the filters cinder-api lets a list query use (nova lists attachments by instance_id)
resource_query_filters_file = {root}/etc/cinder/resource_filters.json
debug = false
[noop]
volume_driver = cinder.volume.drivers.novastress_noop.NoopVolumeDriver
volume_backend_name = noop
[database]
connection = {_database(ports, secrets, 'cinder')}
[oslo_concurrency]
lock_path = {root}/data/cinder/locks
[coordination]
backend_url = file://{root}/data/cinder/coordination
""" + _service_auth("keystone_authtoken", ports, "cinder", secrets["cinder"], True) + \
        _service_auth("nova", ports, "cinder", secrets["cinder"])


def render(root: Path, ports: Ports, secrets: dict, hosts: list[str], with_cinder: bool = False) -> dict[str, str]:
    """Every generated file of the stack, keyed by its path relative to the state directory."""
    files = {
        "etc/keystone/keystone.conf": keystone(root, ports, secrets),
        "etc/placement/placement.conf": placement(root, ports, secrets),
        "etc/glance/glance-api.conf": glance(root, ports, secrets),
        "etc/neutron/neutron.conf": neutron(root, ports, secrets),
        "etc/neutron/ml2_conf.ini": ML2,
        "etc/nova/nova.conf": nova(root, ports, secrets, "controller", with_database=True),
        "etc/nova/nova-api.conf": f"[DEFAULT]\nlog_file = {root}/logs/nova-api.log\n",
    }
    if with_cinder:
        files["etc/cinder/cinder.conf"] = cinder(root, ports, secrets)
        files["etc/cinder/cinder-api.conf"] = f"[DEFAULT]\nlog_file = {root}/logs/cinder-api.log\n"
    for host in hosts:
        files[f"etc/nova/nova-compute-{host}.conf"] = nova(
            root, ports, secrets, host, with_database=False,
            log_file=f"{root}/logs/nova-compute-{host}.log")
    return files
