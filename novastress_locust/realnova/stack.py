"""A real Nova 34 on 127.0.0.1: install, start, check and stop its services.

    stack = Stack(Path("~/.cache/novastress-realnova").expanduser())
    stack.up(Shape(flavors=2, compute_hosts=2), clouds_yaml=stack.root / "clouds.yaml")
    stack.down()

Keystone, Placement, Glance, the Neutron API, nova-api, -conductor, -scheduler and one
nova-compute per simulated host (Nova's fake virt driver), on a MariaDB and a RabbitMQ of
the stack's own; with `Shape(cinder=True)` also cinder-api, -scheduler and -volume (Cinder
29 with a backend that stores nothing, noop_volume.py). Everything lives in the state
directory: virtualenvs, configuration, databases, logs (one file per service) and the pid of
each daemon, which runs in its own session so that `down` stops exactly what `up` started.
Every step is idempotent: a second `up` checks each service and restarts only the ones that
are not answering.
"""
from __future__ import annotations

import fcntl
import json
import os
import secrets as tokens
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from . import configs
from .configs import HOST, Ports

HERE = Path(__file__).resolve().parent
DEBIAN_PACKAGES = {"/usr/sbin/mariadbd": "mariadb-server", "/usr/bin/mariadb-install-db": "mariadb-server",
                   "/usr/bin/mariadb": "mariadb-client",
                   "/usr/lib/rabbitmq/bin/rabbitmq-server": "rabbitmq-server"}
# one virtualenv per group of services whose pins agree
# (python-memcached and os-brick only so that stevedore's scan of every cache and store
# backend logs no ERROR when a service first loads them)
VIRTUALENVS = {
    "venv-nova": ["nova==34.0.0", "openstack-placement==16.0.0", "keystone==30.0.0", "gunicorn", "pymysql",
                  "python-memcached"],
    "venv-glance": ["glance==33.0.0", "gunicorn", "pymysql", "python-memcached", "os-brick"],
    "venv-neutron": ["neutron==29.0.0", "gunicorn", "pymysql", "SQLAlchemy<2.1", "python-memcached"],
}
# Cinder 29 is Nova 34's release; its pins agree with nova's, so it joins venv-nova (only
# when a shape asks for it: it adds about 115 MB and about 20 s of pip)
CINDER_REQUIREMENTS = ["cinder==29.0.0"]
DATABASES = ("keystone", "placement", "glance", "neutron", "nova_api", "nova", "nova_cell0", "cinder")
FLAVORS = (("m1.nano", 64, 1), ("m1.micro", 128, 1), ("m1.tiny", 256, 1), ("m1.small", 512, 2),
           ("m1.medium", 1024, 4), ("m1.large", 2048, 8))
IMAGE_NAME = "realnova-image"
PROBE_ATTEMPT = 60.0     # seconds one probe boot may take before it is deleted and tried again
MEMBER_CLOUD, ADMIN_CLOUD = "realnova", "realnova-admin"
SERVICE_USERS = ("nova", "placement", "glance", "neutron", "cinder")
CATALOG = (("keystone", "identity", None), ("nova", "compute", "/v2.1"), ("placement", "placement", ""),
           ("glance", "image", ""), ("neutron", "network", ""))
# Cinder under the type Nova looks up (volumev3, its catalog_info default) and the one the
# service-types authority names it by (block-storage)
CINDER_CATALOG = (("cinderv3", "volumev3"), ("cinder", "block-storage"))


class StackError(Exception):
    """Something the stack cannot do; str() is one line naming what and where to look."""


@dataclass(frozen=True)
class Shape:
    """What the cloud looks like: how many flavors and simulated compute hosts, and whether
    it has Cinder."""

    flavors: int = 1
    compute_hosts: int = 1
    cinder: bool = False

    def hosts(self) -> list[str]:
        return [f"compute-{n}" for n in range(1, self.compute_hosts + 1)]


@dataclass
class Daemon:
    """One long-running process of the stack."""

    name: str
    command: list[str]
    log: str                               # the service's own log, relative to the state dir
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None                # answers HTTP (or, for the broker/DB, TCP) here
    http: bool = True


@dataclass
class DaemonStatus:
    name: str
    pid: int | None
    state: str                             # running, stopped, not answering
    log: Path


class Stack:
    """The real-Nova stack under one state directory."""

    def __init__(self, root: Path, ports: Ports = Ports(), say: Callable[[str], None] = print) -> None:
        self.root = root.expanduser().resolve()
        self.ports = ports
        self.say = say

    # --- layout -------------------------------------------------------------------------
    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def venv(self, name: str, program: str) -> str:
        return str(self.path(name, "bin", program))

    def secrets(self) -> dict[str, str]:
        """The stack's passwords, made once and kept in run/secrets.json (mode 0600)."""
        stored = self.path("run", "secrets.json")
        kept = json.loads(stored.read_text()) if stored.exists() else {}
        # a service user added since the stack was made gets a password of its own
        made = {name: kept.get(name) or tokens.token_urlsafe(12)
                for name in ("admin", "demo", "database", *SERVICE_USERS)}
        if made == kept:
            return kept
        stored.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)       # the mode of a file that was there is kept by open
        with os.fdopen(descriptor, "w") as handle:
            json.dump(made, handle)
        return made

    def daemons(self, shape: Shape) -> list[Daemon]:
        """Every daemon in start order."""
        root, ports = self.root, self.ports
        user = _user_name()
        serve = str(HERE / "serve.py")

        def wsgi(name: str, venv: str, target: str, port: int, workers: int, threads: int,
                 log: str, **env: str) -> Daemon:
            command = [self.venv(venv, "python"), serve, target, f"{HOST}:{port}", "--workers", str(workers),
                       "--threads", str(threads), "--access-log", str(self.path("logs", "other", f"{name}-access.log")),
                       "--name", name]
            return Daemon(name, command, log, {"PYTHONWARNINGS": "ignore", **env}, port)

        nova_conf = str(self.path("etc", "nova", "nova.conf"))
        daemons = [
            Daemon("mariadb", ["/usr/sbin/mariadbd", "--no-defaults", f"--user={user}",
                               f"--datadir={root}/data/mariadb", f"--socket={root}/run/mariadb.sock",
                               f"--pid-file={root}/run/mariadbd.pid", f"--bind-address={HOST}",
                               f"--port={ports.mariadb}", "--max-connections=1000",
                               "--innodb-buffer-pool-size=256M", f"--log-error={root}/logs/other/mariadb.log"],
                   "logs/other/mariadb.log", port=ports.mariadb, http=False),
            Daemon("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], "logs/other/rabbitmq.out", {
                "HOME": str(self.path("data", "rabbitmq")),
                "RABBITMQ_NODENAME": "novastress@localhost",
                "RABBITMQ_NODE_IP_ADDRESS": HOST, "RABBITMQ_NODE_PORT": str(ports.rabbitmq),
                "RABBITMQ_DIST_PORT": str(ports.rabbitmq_dist),
                "RABBITMQ_MNESIA_BASE": str(self.path("data", "rabbitmq", "mnesia")),
                "RABBITMQ_LOG_BASE": str(self.path("logs", "other")),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.path("etc", "rabbitmq", "enabled_plugins")),
                "RABBITMQ_CONFIG_FILE": str(self.path("etc", "rabbitmq", "rabbitmq")),
                "RABBITMQ_CONF_ENV_FILE": str(self.path("etc", "rabbitmq", "rabbitmq-env.conf")),
                "RABBITMQ_PID_FILE": str(self.path("run", "rabbitmq-beam.pid")),
            }, port=ports.rabbitmq, http=False),
            wsgi("keystone", "venv-nova", "keystone.wsgi.api:application", ports.keystone, 2, 4,
                 "logs/keystone.log", OS_KEYSTONE_CONFIG_DIR=f"{root}/etc/keystone"),
            wsgi("placement", "venv-nova", "placement.wsgi.api:application", ports.placement, 2, 4,
                 "logs/placement.log", OS_PLACEMENT_CONFIG_DIR=f"{root}/etc/placement"),
            wsgi("glance", "venv-glance", "glance.wsgi.api:application", ports.glance, 1, 4,
                 "logs/glance-api.log", OS_GLANCE_CONFIG_DIR=f"{root}/etc/glance"),
            wsgi("neutron", "venv-neutron", "neutron.wsgi.api:application", ports.neutron, 1, 8,
                 "logs/neutron-server.log", OS_NEUTRON_CONFIG_DIR=f"{root}/etc/neutron",
                 OS_NEUTRON_CONFIG_FILES="neutron.conf;ml2_conf.ini", REALNOVA_CONFIGURE_MAPPERS="1"),
            Daemon("nova-conductor", [self.venv("venv-nova", "nova-conductor"), "--config-file", nova_conf],
                   "logs/nova-conductor.log", {"PYTHONWARNINGS": "ignore"}),
            Daemon("nova-scheduler", [self.venv("venv-nova", "nova-scheduler"), "--config-file", nova_conf],
                   "logs/nova-scheduler.log", {"PYTHONWARNINGS": "ignore"}),
        ]
        for host in shape.hosts():
            daemons.append(Daemon(f"nova-compute-{host}", [
                self.venv("venv-nova", "nova-compute"), "--config-file",
                str(self.path("etc", "nova", f"nova-compute-{host}.conf"))],
                f"logs/nova-compute-{host}.log", {"PYTHONWARNINGS": "ignore"}))
        daemons.append(wsgi("nova-api", "venv-nova", "nova.wsgi.osapi_compute:application", ports.nova_api, 2, 8,
                            "logs/nova-api.log", OS_NOVA_CONFIG_DIR=f"{root}/etc/nova",
                            OS_NOVA_CONFIG_FILES="api-paste.ini;nova.conf;nova-api.conf"))
        if shape.cinder:
            cinder_conf = str(self.path("etc", "cinder", "cinder.conf"))
            api = wsgi("cinder-api", "venv-nova", "cinder.wsgi.api:application", ports.cinder, 1, 8,
                       "logs/cinder-api.log")
            # cinder's WSGI module reads its configuration from the command line only
            api.command += ["--config-file", cinder_conf, "--config-file",
                            str(self.path("etc", "cinder", "cinder-api.conf"))]
            daemons.append(api)
            for name in ("cinder-scheduler", "cinder-volume"):
                daemons.append(Daemon(name, [self.venv("venv-nova", name), "--config-file", cinder_conf],
                                      f"logs/{name}.log", {"PYTHONWARNINGS": "ignore"}))
        return daemons

    # --- commands ---------------------------------------------------------------------
    def up(self, shape: Shape, clouds_yaml: Path, fresh: bool = False) -> None:
        """Install what is missing, start what is not running, shape the cloud, write clouds.yaml.
        `fresh` first stops the stack and forgets everything it ran (a cloud with no earlier run's
        servers, volumes or allocations in it); the installed virtualenvs are kept."""
        started = time.monotonic()
        self._started: list[str] = []
        if fresh:
            self.down()
            self._forget_runs()
        for name in ("logs/other", "run", "data", "etc"):
            self.path(name).mkdir(parents=True, exist_ok=True)
        with self._lock():
            self._check_platform()
            self._install_packages()
            self._install_virtualenvs(shape)
            secrets = self.secrets()
            self._write_configs(shape, secrets)
            daemons = {daemon.name: daemon for daemon in self.daemons(shape)}
            self._stop_retired(shape)
            self._initialize_mariadb()
            self._ensure_running(daemons["mariadb"], timeout=60)
            self._create_databases(secrets)
            self._ensure_running(daemons["rabbitmq"], timeout=90)
            self._sync_databases(secrets, shape)
            for name in ("keystone", "placement", "glance", "neutron"):
                self._ensure_running(daemons[name], timeout=120, wait=False)
            for name in ("keystone", "placement", "glance", "neutron"):
                self._wait_answering(daemons[name], timeout=120)
            admin = self._keystone_setup(secrets)
            self.path("data", ".done-keystone-setup").touch()
            self._shape_cinder_catalog(admin, shape, secrets)
            for name, daemon in daemons.items():
                if name.startswith(("nova-", "cinder-")):
                    self._ensure_running(daemon, timeout=120, wait=False)
            self._wait_answering(daemons["nova-api"], timeout=120)
            if shape.cinder:
                self._wait_answering(daemons["cinder-api"], timeout=120)
                self._wait_cinder_volume(admin, shape, timeout=120)
            self._wait_compute_hosts(admin, shape, timeout=180)
            self._shape_flavors(admin, shape)
            image = self._ensure_image(admin)
            if self._started:
                self._probe_boot(admin, image, timeout=300)
            self._write_clouds_yaml(clouds_yaml, secrets)
        self.say(f"real Nova 34 is up in {time.monotonic() - started:.0f} s: auth URL {configs.auth_url(self.ports)}, "
                 f"{shape.compute_hosts} compute host(s), {shape.flavors} flavor(s), "
                 f"{'Cinder 29' if shape.cinder else 'no Cinder'}, image {IMAGE_NAME} ({image})")
        self.say(f"clouds.yaml: {clouds_yaml} (clouds {MEMBER_CLOUD!r} and {ADMIN_CLOUD!r}); "
                 f"logs: {self.path('logs')}/*.log")

    def down(self) -> list[str]:
        """Stop every daemon the stack started (by its recorded pid), newest first."""
        stopped = []
        order = [daemon.name for daemon in self.daemons(self.recorded_shape())]
        with self._lock():
            pid_files = self.path("run").glob("*.daemon.pid")
            for pid_file in sorted(pid_files, key=lambda f: order.index(f.name[:-11]) if f.name[:-11] in order else 99,
                                   reverse=True):
                name = pid_file.name[: -len(".daemon.pid")]
                pid = _read_pid(pid_file)
                if pid and self._alive(name, pid):
                    _stop_group(pid)
                    stopped.append(name)
                pid_file.unlink(missing_ok=True)
        self.say(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
        return stopped

    def status(self) -> list[DaemonStatus]:
        """Each daemon with its pid and whether it answers."""
        shape = self.recorded_shape()
        rows = []
        for daemon in self.daemons(shape):
            pid = _read_pid(self._pid_file(daemon.name))
            if not pid or not self._alive(daemon.name, pid):
                state = "stopped"
            else:
                state = "running" if self._answers(daemon) else "not answering"
            rows.append(DaemonStatus(daemon.name, pid if state != "stopped" else None, state,
                                     self.path(daemon.log)))
        return rows

    def service(self, verb: str, name: str, timeout: float = 120) -> str:
        """Act on one daemon of the running stack, as a fault schedule does: start (and wait until it
        answers), stop (SIGTERM, then SIGKILL), restart, kill (SIGKILL, it stays down), freeze
        (SIGSTOP), thaw (SIGCONT). Its workers too: the signal goes to its whole session."""
        daemons = {daemon.name: daemon for daemon in self.daemons(self.recorded_shape())}
        if name not in daemons:
            raise StackError(f"no daemon {name!r} in this stack; its daemons: {', '.join(daemons)}")
        daemon, pid_file = daemons[name], self._pid_file(name)
        with self._lock():
            pid = _read_pid(pid_file)
            running = bool(pid) and self._alive(name, pid)
            if verb in ("stop", "restart", "kill") and running:
                if verb == "kill":
                    os.killpg(pid, signal.SIGKILL)
                else:
                    os.killpg(pid, signal.SIGCONT)       # a frozen daemon cannot take its SIGTERM
                    _stop_group(pid)
            elif verb in ("freeze", "thaw"):
                if not running:
                    raise StackError(f"{name} is not running: nothing to {verb}")
                os.killpg(pid, signal.SIGSTOP if verb == "freeze" else signal.SIGCONT)
            if verb in ("start", "restart"):
                self._started = []
                self._ensure_running(daemon, timeout)
        return f"{name}: {verb} done"

    def log_files(self) -> list[Path]:
        """The services' logs (logs/*.log: what a log watch should read), then the rest."""
        return sorted(self.path("logs").glob("*.log")) + sorted(self.path("logs", "other").glob("*"))

    # --- steps ------------------------------------------------------------------------
    def _forget_runs(self) -> None:
        """Databases, broker, images, instances, logs and the keys that signed old tokens."""
        with self._lock():
            for relative in ("data", "logs", "etc/keystone/fernet-keys", "etc/keystone/credential-keys"):
                shutil.rmtree(self.path(relative), ignore_errors=True)
        self.say("forgot the earlier runs: databases, images, instances and logs (virtualenvs kept)")

    def _check_platform(self) -> None:
        if sys.version_info < (3, 11):
            raise StackError(f"Nova 34 needs Python 3.11 or newer; this is {sys.version.split()[0]}: "
                             "run novastress-realnova with a newer python3")

    def _install_packages(self) -> None:
        missing = sorted({package for binary, package in DEBIAN_PACKAGES.items() if not os.path.exists(binary)})
        if not missing:
            return
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise StackError(f"missing Debian packages {' '.join(missing)}: install them "
                             f"(sudo apt-get install {' '.join(missing)}) and rerun")
        self.say(f"installing Debian packages: {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        self._run(["apt-get", "update", "-qq"], "apt-get update", env=env, timeout=600)
        self._run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                  "apt-get install", env=env, timeout=900)

    def _install_virtualenvs(self, shape: Shape) -> None:
        todo = [name for name, requirements in VIRTUALENVS.items()
                if _read(self.path(name, ".novastress-requirements")) != "\n".join(requirements)]
        if todo:
            self.say(f"installing {', '.join(todo)} from PyPI (the first time takes a few minutes)")
            with ThreadPoolExecutor(len(todo)) as pool:
                for _ in pool.map(self._install_virtualenv, todo):
                    pass
        site_packages = self._site_packages("venv-nova")
        shutil.copyfile(HERE / "stable_fake.py", site_packages / "nova" / "virt" / "novastress_fake.py")
        if not shape.cinder:
            return
        if _read(self.path("venv-nova", ".novastress-cinder")) != "\n".join(CINDER_REQUIREMENTS):
            self.say(f"installing {' '.join(CINDER_REQUIREMENTS)} into venv-nova from PyPI")
            # nova's own pins on the same command line, so that pip keeps them
            requirements = VIRTUALENVS["venv-nova"] + CINDER_REQUIREMENTS
            self._run([self.venv("venv-nova", "python"), "-m", "pip", "install", "--quiet", *requirements],
                      f"pip install {' '.join(requirements)}", timeout=900, log="install-cinder.log")
            _write(self.path("venv-nova", ".novastress-cinder"), "\n".join(CINDER_REQUIREMENTS))
        shutil.copyfile(HERE / "noop_volume.py", site_packages / "cinder" / "volume" / "drivers" / "novastress_noop.py")

    def _install_virtualenv(self, name: str) -> None:
        requirements = VIRTUALENVS[name]
        target = self.path(name)
        if not os.access(self.venv(name, "python"), os.X_OK):
            shutil.rmtree(target, ignore_errors=True)
            self._run([sys.executable, "-m", "venv", str(target)], f"making {name}", timeout=300)
        self._run([self.venv(name, "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                  f"upgrading pip in {name}", timeout=600, log=f"install-{name}.log")
        self._run([self.venv(name, "python"), "-m", "pip", "install", "--quiet", *requirements],
                  f"pip install {' '.join(requirements)}", timeout=1200, log=f"install-{name}.log")
        self.path(name, ".novastress-requirements").write_text("\n".join(requirements))

    def _site_packages(self, venv: str) -> Path:
        found = list(self.path(venv, "lib").glob("python3*/site-packages"))
        if not found:
            raise StackError(f"{self.path(venv)} has no site-packages: remove it and run up again")
        return found[0]

    def _write_configs(self, shape: Shape, secrets: dict) -> None:
        for relative, text in configs.render(self.root, self.ports, secrets, shape.hosts(), shape.cinder).items():
            _write(self.path(relative), text)
        # the paste pipelines (and cinder-api's list filters) as each service ships them
        shipped = [("venv-nova", "etc/nova/api-paste.ini", "etc/nova/api-paste.ini"),
                   ("venv-glance", "etc/glance/glance-api-paste.ini", "etc/glance/glance-api-paste.ini"),
                   ("venv-neutron", "etc/neutron/api-paste.ini", "etc/neutron/api-paste.ini")]
        if shape.cinder:
            shipped += [("venv-nova", f"etc/cinder/{name}", f"etc/cinder/{name}")
                        for name in ("api-paste.ini", "resource_filters.json")]
            self.path("data", "cinder", "locks").mkdir(parents=True, exist_ok=True)
        for venv, source, target in shipped:
            shutil.copyfile(self.path(venv, source), self.path(target))
        _write(self.path("etc", "rabbitmq", "enabled_plugins"), "[].\n")
        _write(self.path("etc", "rabbitmq", "rabbitmq.conf"), "loopback_users.guest = true\n")
        _write(self.path("etc", "rabbitmq", "rabbitmq-env.conf"), "")
        for relative in ("data/glance/images", "data/glance/staging", "data/glance/tasks", "data/neutron-locks",
                         "data/rabbitmq", "etc/keystone/fernet-keys", "etc/keystone/credential-keys",
                         *(f"data/nova-{host}/instances" for host in shape.hosts())):
            self.path(relative).mkdir(parents=True, exist_ok=True)
        _write(self.path("run", "shape.json"), json.dumps(vars(shape)))

    def _initialize_mariadb(self) -> None:
        if self.path("data", "mariadb", "mysql").is_dir():
            return
        self._run(["/usr/bin/mariadb-install-db", "--no-defaults", f"--user={_user_name()}",
                   f"--datadir={self.root}/data/mariadb", "--auth-root-authentication-method=normal",
                   "--skip-test-db"], "mariadb-install-db", timeout=300)

    def _create_databases(self, secrets: dict) -> None:
        statements = [f"CREATE DATABASE IF NOT EXISTS {name}" for name in DATABASES]
        for host in ("127.0.0.1", "localhost"):
            statements += [f"CREATE USER IF NOT EXISTS 'os'@'{host}' IDENTIFIED BY '{secrets['database']}'",
                           f"GRANT ALL ON *.* TO 'os'@'{host}'"]
        self._run(["/usr/bin/mariadb", "--no-defaults", f"--socket={self.root}/run/mariadb.sock", "-uroot",
                   "-e", "; ".join(statements) + "; FLUSH PRIVILEGES;"], "creating the databases", timeout=60)

    def _sync_databases(self, secrets: dict, shape: Shape) -> None:
        nova_manage = [self.venv("venv-nova", "nova-manage"), "--config-file", str(self.path("etc/nova/nova.conf"))]
        keystone_manage = [self.venv("venv-nova", "keystone-manage"), "--config-file",
                           str(self.path("etc/keystone/keystone.conf"))]
        owner = ["--keystone-user", _user_name(), "--keystone-group", _group_name()]
        endpoint = configs.auth_url(self.ports) + "/"
        cell0 = f"mysql+pymysql://os:{secrets['database']}@{HOST}:{self.ports.mariadb}/nova_cell0"
        steps = [
            ("keystone-db", [*keystone_manage, "db_sync"]),
            ("keystone-fernet", [*keystone_manage, "fernet_setup", *owner]),
            ("keystone-credential", [*keystone_manage, "credential_setup", *owner]),
            ("keystone-bootstrap", [*keystone_manage, "bootstrap", "--bootstrap-password", secrets["admin"],
                                    "--bootstrap-admin-url", endpoint, "--bootstrap-internal-url", endpoint,
                                    "--bootstrap-public-url", endpoint, "--bootstrap-region-id", "RegionOne"]),
            ("placement-db", [self.venv("venv-nova", "placement-manage"), "--config-file",
                              str(self.path("etc/placement/placement.conf")), "db", "sync"]),
            ("glance-db", [self.venv("venv-glance", "glance-manage"), "--config-file",
                           str(self.path("etc/glance/glance-api.conf")), "db_sync"]),
            ("neutron-db", [self.venv("venv-neutron", "neutron-db-manage"), "--config-file",
                            str(self.path("etc/neutron/neutron.conf")), "--config-file",
                            str(self.path("etc/neutron/ml2_conf.ini")), "upgrade", "heads"]),
            ("nova-api-db", [*nova_manage, "api_db", "sync"]),
            ("nova-cell0", [*nova_manage, "cell_v2", "map_cell0", "--database_connection", cell0]),
            ("nova-cell1", [*nova_manage, "cell_v2", "create_cell", "--name", "cell1"]),
            ("nova-db", [*nova_manage, "db", "sync"]),
        ]
        if shape.cinder:
            steps.append(("cinder-db", [self.venv("venv-nova", "cinder-manage"), "--config-file",
                                        str(self.path("etc/cinder/cinder.conf")), "db", "sync"]))
        pending = [(name, command) for name, command in steps if not self.path("data", f".done-{name}").exists()]
        if pending:
            self.say(f"preparing the databases: {', '.join(name for name, _ in pending)}")
        for name, command in pending:
            # keystone-manage reads no config dir but the one it is given; none of these
            # commands may see this process's argv
            self._run(command, name, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=600,
                      ok_codes=(0, 2) if name == "nova-cell1" else (0,))
            self.path("data", f".done-{name}").touch()

    def _keystone_setup(self, secrets: dict):
        """Service users, catalog, the demo project and user; returns an admin Session."""
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        url = configs.auth_url(self.ports)
        admin = ks_session.Session(auth=v3.Password(
            auth_url=url, username="admin", password=secrets["admin"], project_name="admin",
            user_domain_id="default", project_domain_id="default"))
        if self.path("data", ".done-keystone-setup").exists():
            return admin                   # done by an earlier up; passwords are never changed
        identity = _Identity(admin, url)
        service_project = identity.find_or_create("projects", "project", {"name": "service", "domain_id": "default"})
        roles = {name: identity.find_or_create("roles", "role", {"name": name})
                 for name in ("admin", "member", "reader", "service")}
        for name in SERVICE_USERS:
            user = identity.user(name, secrets[name])
            for role in ("admin", "service"):
                identity.grant(service_project, user, roles[role])
        for name, service_type, suffix in CATALOG:
            if suffix is None:
                continue                   # keystone bootstrap made identity's endpoints
            port = getattr(self.ports, "nova_api" if name == "nova" else name)
            identity.service(name, service_type, f"http://{HOST}:{port}{suffix}")
        demo_project = identity.find_or_create("projects", "project", {"name": "demo", "domain_id": "default"})
        demo = identity.user("demo", secrets["demo"], default_project_id=demo_project)
        for role in ("member", "reader"):
            identity.grant(demo_project, demo, roles[role])
        admin.invalidate()                 # the next token's catalog has the endpoints just made
        return admin

    def _wait_services_up(self, admin, shape: Shape, service_type: str, binary: str,
                          ready: Callable[[set[str]], bool], timeout: float, failure: Callable[[set[str]], str]) -> None:
        """Poll the service's os-services until `ready(hosts where binary is up and enabled)`;
        StackError `failure(those hosts)` after `timeout` or when a daemon of the stack exits."""
        deadline = time.monotonic() + timeout
        while True:
            up = set()
            try:
                response = admin.get("/os-services", endpoint_filter={"service_type": service_type,
                                                                      "interface": "public"},
                                     params={"binary": binary}, raise_exc=False)
                if response.status_code == 200:
                    up = {s["host"] for s in response.json()["services"] if s["state"] == "up"
                          and s["status"] == "enabled"}
                if ready(up):
                    return
            except Exception:              # the API may still be starting its workers
                pass
            if time.monotonic() > deadline:
                raise StackError(failure(up))
            self._check_daemons_alive(shape)
            time.sleep(2)

    def _wait_compute_hosts(self, admin, shape: Shape, timeout: float) -> None:
        """Every simulated host's nova-compute is up and mapped to the cell."""
        hosts = set(shape.hosts())
        deadline = time.monotonic() + timeout
        self._wait_services_up(
            admin, shape, "compute", "nova-compute", lambda up: hosts <= up, timeout,
            lambda up: f"nova-compute did not come up on {', '.join(sorted(hosts - up))} within "
                       f"{timeout:.0f} s; see {self.path('logs')}/nova-compute-*.log")
        nova_manage = [self.venv("venv-nova", "nova-manage"), "--config-file", str(self.path("etc/nova/nova.conf"))]
        while True:
            self._run([*nova_manage, "cell_v2", "discover_hosts"], "nova-manage cell_v2 discover_hosts", timeout=120)
            listed = subprocess.run([*nova_manage, "cell_v2", "list_hosts"], capture_output=True, text=True,
                                    timeout=120).stdout
            if all(f" {host} " in listed for host in hosts):
                return
            if time.monotonic() > deadline:
                raise StackError(f"compute hosts {', '.join(sorted(hosts))} were not mapped to cell1 within "
                                 f"{timeout:.0f} s; see {self.path('logs')}/nova-conductor.log")
            time.sleep(2)

    def _check_daemons_alive(self, shape: Shape) -> None:
        for daemon in self.daemons(shape):
            pid = _read_pid(self._pid_file(daemon.name))
            if pid and not self._alive(daemon.name, pid):
                raise StackError(f"{daemon.name} exited while the stack was starting: "
                                 f"{_last_line(self.path(daemon.log))} (see {self.path(daemon.log)})")

    def _stop_retired(self, shape: Shape) -> None:
        """Stop the daemons a previous `up` started and this shape has not: the nova-compute
        of hosts it dropped, Cinder's services when it has no Cinder."""
        wanted = {daemon.name for daemon in self.daemons(shape)}
        for pid_file in sorted(self.path("run").glob("*.daemon.pid")):
            name = pid_file.name[: -len(".daemon.pid")]
            if name in wanted:
                continue
            pid = _read_pid(pid_file)
            if pid and self._alive(name, pid):
                _stop_group(pid)
                reason = "no Cinder" if name.startswith("cinder-") else f"{shape.compute_hosts} host(s)"
                self.say(f"stopped {name}: this shape has {reason}")
            pid_file.unlink(missing_ok=True)
            if name.startswith("nova-compute-"):
                _write(self.path("run", "retired-hosts"),
                       "\n".join(sorted(set(_read(self.path("run", "retired-hosts")).split()) | {name[13:]})))

    def _shape_cinder_catalog(self, admin, shape: Shape, secrets: dict) -> None:
        """Cinder in the catalog (and its service user) when the shape has it, out of it when
        not: a cloud whose catalog lists no volume service is one the tool skips volumes on."""
        url = configs.auth_url(self.ports)
        identity = _Identity(admin, url)
        listed = [service for _name, service_type in CINDER_CATALOG
                  for service in admin.get(f"{url}/services", params={"type": service_type}).json()["services"]]
        if not shape.cinder:
            for service in listed:         # keystone deletes a service's endpoints with it
                admin.delete(f"{url}/services/{service['id']}")
            if listed:
                self.say("took Cinder out of the catalog: this shape has no Cinder")
                admin.invalidate()
            return
        service_project = identity.find_or_create("projects", "project", {"name": "service", "domain_id": "default"})
        user = identity.user("cinder", secrets["cinder"])
        for role in ("admin", "service"):
            identity.grant(service_project, user, identity.find_or_create("roles", "role", {"name": role}))
        for name, service_type in CINDER_CATALOG:
            identity.service(name, service_type, f"http://{HOST}:{self.ports.cinder}/v3")
        if len(listed) < len(CINDER_CATALOG):
            admin.invalidate()             # the next token's catalog has Cinder

    def _wait_cinder_volume(self, admin, shape: Shape, timeout: float) -> None:
        """cinder-volume is up and has reported its backend, so that a volume create finds a host."""
        def ready(up: set[str]) -> bool:
            return bool(up) and bool(admin.get("/scheduler-stats/get_pools", endpoint_filter={
                "service_type": "block-storage", "interface": "public"}).json().get("pools"))

        self._wait_services_up(
            admin, shape, "block-storage", "cinder-volume", ready, timeout,
            lambda up: f"cinder-volume did not report its backend within {timeout:.0f} s; "
                       f"see {self.path('logs')}/cinder-volume.log and cinder-scheduler.log")

    def _shape_flavors(self, admin, shape: Shape) -> None:
        compute = {"service_type": "compute", "interface": "public"}
        # the compute services of hosts this shape dropped go too, so nothing schedules there
        retired = set(_read(self.path("run", "retired-hosts")).split()) - set(shape.hosts())
        if retired:
            services = admin.get("/os-services", endpoint_filter=compute, params={"binary": "nova-compute"},
                                 headers={"OpenStack-API-Version": "compute 2.53"}).json()["services"]
            for service in services:
                if service["host"] in retired:
                    admin.delete(f"/os-services/{service['id']}", endpoint_filter=compute,
                                 headers={"OpenStack-API-Version": "compute 2.53"})
            for host in retired:       # added again later, it is a new compute node
                shutil.rmtree(self.path("data", f"nova-{host}"), ignore_errors=True)
            self.path("run", "retired-hosts").unlink(missing_ok=True)
        existing = {f["name"]: f["id"] for f in admin.get("/flavors", endpoint_filter=compute,
                                                          params={"is_public": "None"}).json()["flavors"]}
        for index, (name, ram, disk) in enumerate(FLAVORS):
            if index < shape.flavors and name not in existing:
                admin.post("/flavors", endpoint_filter=compute, json={"flavor": {
                    "name": name, "ram": ram, "vcpus": 1, "disk": disk, "os-flavor-access:is_public": True}})
            elif index >= shape.flavors and name in existing:
                admin.delete(f"/flavors/{existing[name]}", endpoint_filter=compute)

    def _ensure_image(self, admin) -> str:
        image = {"service_type": "image", "interface": "public"}
        found = admin.get("/v2/images", endpoint_filter=image, params={"name": IMAGE_NAME}).json()["images"]
        active = [i for i in found if i["status"] == "active"]
        if active:
            return active[0]["id"]
        for broken in found:               # an upload cut short by a stop: start over
            admin.delete(f"/v2/images/{broken['id']}", endpoint_filter=image)
        made = admin.post("/v2/images", endpoint_filter=image, json={
            "name": IMAGE_NAME, "disk_format": "raw", "container_format": "bare", "visibility": "public"}).json()
        admin.put(f"/v2/images/{made['id']}/file", endpoint_filter=image, data=os.urandom(1 << 20),
                  headers={"Content-Type": "application/octet-stream"})
        return made["id"]

    def _probe_boot(self, admin, image: str, timeout: float) -> None:
        """Boot and delete one server, so that `up` returns a cloud that schedules: right
        after a start the scheduler may still count a compute host as not heard from."""
        compute = {"service_type": "compute", "interface": "public"}
        version = {"OpenStack-API-Version": "compute 2.37"}
        flavor = admin.get("/flavors", endpoint_filter=compute).json()["flavors"][0]["id"]
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            server = admin.post("/servers", endpoint_filter=compute, headers=version, json={"server": {
                "name": "realnova-probe", "imageRef": image, "flavorRef": flavor, "networks": "none"}}
            ).json()["server"]["id"]
            status = "BUILD"
            # a build that hangs (sent to a host that just went away) is given up and tried again
            attempt_ends = min(deadline, time.monotonic() + PROBE_ATTEMPT)
            while status == "BUILD" and time.monotonic() < attempt_ends:
                time.sleep(0.5)
                shown = admin.get(f"/servers/{server}", endpoint_filter=compute).json()["server"]
                status, last = shown["status"], shown.get("fault", {}).get("message", shown["status"])
            admin.delete(f"/servers/{server}", endpoint_filter=compute)
            while time.monotonic() < deadline and admin.get(
                    f"/servers/{server}", endpoint_filter=compute, raise_exc=False).status_code != 404:
                time.sleep(0.5)
            if status == "ACTIVE":
                return
            time.sleep(3)
        raise StackError(f"a probe server did not become ACTIVE within {timeout:.0f} s (last: {last}); "
                         f"see {self.path('logs')}/nova-scheduler.log and nova-conductor.log")

    def _write_clouds_yaml(self, path: Path, secrets: dict) -> None:
        path = path.expanduser()
        document = yaml.safe_load(_read(path) or "{}") or {}
        clouds = document.setdefault("clouds", {})
        for cloud, user, project in ((MEMBER_CLOUD, "demo", "demo"), (ADMIN_CLOUD, "admin", "admin")):
            clouds[cloud] = {
                "auth": {"auth_url": configs.auth_url(self.ports), "username": user, "password": secrets[user],
                         "project_name": project, "user_domain_id": "default", "project_domain_id": "default"},
                "region_name": "RegionOne", "identity_api_version": 3}
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            yaml.safe_dump(document, handle, sort_keys=False)

    # --- daemons ----------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.path("run", f"{name}.daemon.pid")

    def _alive(self, name: str, pid: int) -> bool:
        """The recorded process still runs, and is the one recorded: a recycled pid has
        another start time (gunicorn rewrites its command line, so that cannot tell)."""
        recorded = _read(self._pid_file(name)).split()
        return _start_time(pid) not in (None, "Z") and recorded[1:] == [_start_time(pid)]

    def _answers(self, daemon: Daemon) -> bool:
        if daemon.port is None:
            return True
        if not daemon.http:
            try:
                with socket.create_connection((HOST, daemon.port), timeout=2):
                    return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(f"http://{HOST}:{daemon.port}/", timeout=5):
                return True
        except urllib.error.HTTPError as error:
            return error.code < 500
        except (OSError, ValueError):
            return False

    def _ensure_running(self, daemon: Daemon, timeout: float, wait: bool = True) -> None:
        pid_file = self._pid_file(daemon.name)
        pid = _read_pid(pid_file)
        if pid and self._alive(daemon.name, pid):
            if self._answers(daemon) or daemon.port is None:
                return
            self.say(f"{daemon.name} (pid {pid}) does not answer: restarting it")
            _stop_group(pid)
        elif pid:
            self.say(f"{daemon.name} had stopped: starting it again")
        if daemon.port is not None and self._answers(daemon):
            raise StackError(f"port {daemon.port} on {HOST} is taken by another program: "
                             f"stop it, or stop the stack that owns it, before {daemon.name} can start")
        log = self.path("logs", "other", f"{daemon.name}.out")
        with open(log, "ab") as output:
            process = subprocess.Popen(daemon.command, cwd=self.root, env={**os.environ, **daemon.env, "NOVASTRESS_REALNOVA_DIR": str(self.root)},
                                       stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        _write(pid_file, f"{process.pid} {_start_time(process.pid)}")
        self._started.append(daemon.name)
        if wait:
            self._wait_answering(daemon, timeout)

    def _wait_answering(self, daemon: Daemon, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pid = _read_pid(self._pid_file(daemon.name))
        while not self._answers(daemon):
            if not pid or not self._alive(daemon.name, pid):
                raise StackError(f"{daemon.name} exited at start: {_last_line(self.path(daemon.log))} "
                                 f"(see {self.path(daemon.log)} and {self.path('logs', 'other', daemon.name + '.out')})")
            if time.monotonic() > deadline:
                raise StackError(f"{daemon.name} did not answer on port {daemon.port} within {timeout:.0f} s; "
                                 f"see {self.path(daemon.log)}")
            time.sleep(0.5)

    def recorded_shape(self) -> Shape:
        """The shape the last `up` brought the stack to (the default one before any)."""
        recorded = _read(self.path("run", "shape.json"))
        return Shape(**json.loads(recorded)) if recorded else Shape()

    def _run(self, command: list[str], what: str, timeout: float, env: dict | None = None,
             log: str = "setup.log", ok_codes: tuple[int, ...] = (0,)) -> None:
        log_path = self.path("logs", "other", log)
        with open(log_path, "ab") as output:
            output.write(f"\n$ {what}\n".encode())
            output.flush()
            try:
                completed = subprocess.run(command, cwd=self.root, env=env, stdin=subprocess.DEVNULL,
                                           stdout=output, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise StackError(f"{what} did not finish within {timeout:.0f} s; see {log_path}") from None
        if completed.returncode not in ok_codes:
            raise StackError(f"{what} failed (exit {completed.returncode}): {_last_line(log_path)}; see {log_path}")

    def _lock(self):
        self.path("run").mkdir(parents=True, exist_ok=True)
        return _FileLock(self.path("run", "lock"))


class _Identity:
    """Find-or-create over Keystone's v3 API (enough for the stack's own set-up)."""

    def __init__(self, session, url: str) -> None:
        self.session = session
        self.url = url

    def find_or_create(self, collection: str, member: str, body: dict) -> str:
        found = self.session.get(f"{self.url}/{collection}", params={"name": body["name"]}).json()[collection]
        if found:
            return found[0]["id"]
        return self.session.post(f"{self.url}/{collection}", json={member: body}).json()[member]["id"]

    def user(self, name: str, password: str, **extra: str) -> str:
        found = self.session.get(f"{self.url}/users", params={"name": name}).json()["users"]
        if found:
            return found[0]["id"]
        return self.session.post(f"{self.url}/users", json={"user": {
            "name": name, "password": password, "domain_id": "default", **extra}}).json()["user"]["id"]

    def grant(self, project: str, user: str, role: str) -> None:
        self.session.put(f"{self.url}/projects/{project}/users/{user}/roles/{role}")

    def service(self, name: str, service_type: str, endpoint: str) -> None:
        found = self.session.get(f"{self.url}/services", params={"type": service_type}).json()["services"]
        service = found[0]["id"] if found else self.session.post(
            f"{self.url}/services", json={"service": {"name": name, "type": service_type}}).json()["service"]["id"]
        endpoints = self.session.get(f"{self.url}/endpoints", params={"service_id": service}).json()["endpoints"]
        have = {e["interface"] for e in endpoints}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                self.session.post(f"{self.url}/endpoints", json={"endpoint": {
                    "service_id": service, "interface": interface, "url": endpoint, "region_id": "RegionOne"}})


class _FileLock:
    """One `up`/`down` at a time per state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        self.handle = open(self.path, "w")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another novastress-realnova on {self.path.parent.parent}", file=sys.stderr)
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _stop_group(pid: int, grace: float = 20) -> None:
    """SIGTERM the daemon's session (it and its workers), SIGKILL what is left after `grace`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if _read(path) != text:
        path.write_text(text)


def _read_pid(path: Path) -> int | None:
    text = _read(path).split()
    return int(text[0]) if text and text[0].isdigit() else None


def _start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot), "Z" for a zombie, None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return "Z" if fields[0] == "Z" else fields[19]


def _last_line(path: Path) -> str:
    lines = [line for line in _read(path).splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else "(no output)"


def _user_name() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


def _group_name() -> str:
    import grp
    return grp.getgrgid(os.getegid()).gr_name


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log."""
    return list(deque(_read(path).splitlines(), maxlen=lines))
