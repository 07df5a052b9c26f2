"""Serve one OpenStack WSGI application with gunicorn (run by the service's own virtualenv).

    python serve.py keystone.wsgi.api:application 127.0.0.1:5000 --workers 2 --threads 4 \
        --access-log logs/keystone-access.log --name keystone

oslo.config parses `sys.argv` when the WSGI module is imported, and gunicorn's own
arguments make it fail with "unrecognized arguments" (and gunicorn then respawns workers
forever), so gunicorn is embedded here and `sys.argv` is reset before the import: to the
service's name, plus `--config-file FILE` for a service that reads its configuration from
the command line only (cinder-api). This file imports nothing of novastress_locust: it runs
inside the service's virtualenv.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from gunicorn.app.base import BaseApplication


class Service(BaseApplication):
    """A gunicorn application whose WSGI callable is imported by name in each worker."""

    def __init__(self, target: str, settings: dict, config_files: list[str]) -> None:
        self.target = target
        self.settings = settings
        self.config_files = config_files
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.settings.items():
            self.cfg.set(key, value)

    def load(self):
        sys.argv = [self.settings["proc_name"], *(f"--config-file={path}" for path in self.config_files)]
        module, _, attribute = self.target.partition(":")
        application = getattr(importlib.import_module(module), attribute)
        if os.environ.get("REALNOVA_CONFIGURE_MAPPERS"):
            # neutron: a first request of GET /ports answers 500 "Port has no attribute
            # port_forwardings" until SQLAlchemy's backrefs are configured
            import sqlalchemy.orm
            sqlalchemy.orm.configure_mappers()
        return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="module:attribute of the WSGI application")
    parser.add_argument("bind", help="HOST:PORT")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--access-log", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--config-file", action="append", default=[], help="passed on to the application")
    args = parser.parse_args()
    Service(args.target, {
        "bind": args.bind, "workers": args.workers, "threads": args.threads,
        # no keep-alive: a client reusing a connection that the server is just closing
        # gets "connection reset by peer", which nova-api logs as an ERROR
        "worker_class": "gthread", "timeout": 300, "graceful_timeout": 10, "keepalive": 0,
        "errorlog": args.access_log, "accesslog": args.access_log, "proc_name": args.name,
    }, args.config_file).run()


if __name__ == "__main__":
    main()
