"""An in-process embedded cloud: the same app object, called without a socket.

For checks that need the cross-service interface (what compute calls) next to
the HTTP API, with gevent timers under the test's control: transitions run only
when the test yields (`gevent.sleep`).
"""
from __future__ import annotations

import json

import pytest

from novastress_locust.fakecloud.app import Cloud
from novastress_locust.fakecloud.config import CloudConfig, Delays
from novastress_locust.fakecloud.http import Request


class LocalCloud:
    """A `Cloud` plus helpers that issue tokens and make API calls through the app."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self._tokens: dict[bool, str] = {}

    def token(self, admin: bool = False) -> str:
        if admin not in self._tokens:
            user, project = ("admin", "admin") if admin else ("demo", "demo")
            password = self.cloud.admin_password if admin else self.cloud.member_password
            body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
                "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
            response = self.call("POST", "/identity/v3/auth/tokens", body, token=None)
            self._tokens[admin] = dict((k.lower(), v) for k, v in response.headers)["x-subject-token"]
        return self._tokens[admin]

    def call(self, method: str, path: str, body=None, token: str | None = "member",
             headers: dict[str, str] | None = None):
        """The app's Response; `.payload` holds the decoded JSON body."""
        sent = {"content-type": "application/json", **(headers or {})}
        if token == "member":
            token = self.token()
        elif token == "admin":
            token = self.token(admin=True)
        if token:
            sent["x-auth-token"] = token
        data = b"" if body is None else json.dumps(body).encode()
        response = self.cloud(Request(method, path, sent, data))
        response.payload = json.loads(response.body) if response.body else None
        return response


@pytest.fixture
def local_cloud(tmp_path):
    """Start in-process clouds: `local_cloud(faults=[...], fault_probability={...})`."""
    made: list[Cloud] = []

    def make(**settings) -> LocalCloud:
        settings.setdefault("faults", "none")
        settings.setdefault("delays", Delays.scaled(0))
        settings.setdefault("seed", 7)
        cloud = Cloud(CloudConfig(log_dir=str(tmp_path / f"logs-{len(made)}"), **settings))
        made.append(cloud)
        return LocalCloud(cloud)

    yield make
    for cloud in made:
        cloud.close()
