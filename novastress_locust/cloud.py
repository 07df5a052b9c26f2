"""Reaching the cloud: one credential's keystoneauth session, and the client of the calls that
are not load. The load's OpenStackClient (client.py) stands on the same CloudSession.

    cloud = RetryingClient(target, Retry(retries=5), deadline=time.monotonic() + 600)
    cloud.authenticate()                                   # CredentialsError: one clear line
    cloud.endpoint("volume")                               # None on a cloud without Cinder
    cloud.has_role("admin")
    cloud.call("compute", "GET", "/servers/detail")        # retried on 5xx and resets; CallFailed

RetryingClient is what the end-of-run sweep, `novastress-cleanup` and the fault checks use: each
call retried with backoff on transient trouble within one deadline, no Locust events. This
module imports nothing of Locust: `novastress-cleanup` runs without it.
"""
from __future__ import annotations

import itertools
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

from .credentials import CloudTarget, CredentialsError, quiet_discovery
from .errors import error_message, first_line
from .transport import use_transport


class ApiError(Exception):
    """An OpenStack call answered something unexpected; str() is one line."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CallFailed(ApiError):
    """A RetryingClient call that still failed after its retries; str() is one line, no secrets."""

    transient = False


class CloudSession:
    """One credential's keystoneauth session: what every client of the cloud stands on.

        cloud = CloudSession(target, target.plugin(), timeout=30)
        cloud.authenticate()          # a token now, or CredentialsError (one clear line)
        cloud.endpoint("volume")      # its URL; None on a cloud without Cinder (no error)
        cloud.has_role("admin")       # whether the token carries the role

    `endpoints` is a cache shared by the clients of one process (RunState.endpoints): the catalog
    is read once per credential and service.
    """

    def __init__(self, target: CloudTarget, auth: Any, *, timeout: float | None = None,
                 transport: str = "requests", endpoints: dict | None = None) -> None:
        self.target = target
        self.session = target.session(auth)
        # --transport fast: geventhttpclient under keystoneauth (transport.py)
        use_transport(self.session, transport)
        # keystoneauth applies it to every call of the session, token requests included
        self.session.timeout = timeout
        self._endpoints: dict = endpoints if endpoints is not None else {}

    def endpoint(self, service: str) -> str | None:
        """The service's URL in the credential's catalog, None when it does not list it
        (CloudTarget.endpoint, once per credential and service)."""
        key = (self.target.key, service)
        if key not in self._endpoints:
            self._endpoints[key] = self.target.endpoint(self.session, service)
        return self._endpoints[key]

    def has_service(self, service: str) -> bool:
        """Whether the catalog lists the service (compute, image, volume, network, placement…)."""
        return self.endpoint(service) is not None

    @property
    def project_id(self) -> str | None:
        return self.session.get_project_id()

    @property
    def user_id(self) -> str | None:
        return self.session.get_user_id()

    def roles(self) -> list[str]:
        """The token's role names (authenticating first: keystoneauth's errors when it cannot)."""
        return list(self.session.auth.get_access(self.session).role_names)

    def has_role(self, role: str) -> bool:
        """Whether the token carries `role` (False when there is no token to ask)."""
        try:
            return role in self.roles()
        except Exception:  # keystoneauth's errors: no token, no roles
            return False

    def authenticate(self) -> None:
        """Get a token now: bad credentials or an unreachable auth URL become one clear line."""
        from keystoneauth1 import exceptions as ks

        who = f"{self.target.who} ({self.target.source})"
        try:
            with quiet_discovery():
                self.session.get_token()
        except ks.Unauthorized:
            raise CredentialsError(f"authentication failed for {who}: the cloud answered 401; "
                                   f"check the password / application credential") from None
        except (ks.ConnectFailure, ks.DiscoveryFailure) as exc:
            reason = _connection_reason(str(exc))
            if reason:
                raise CredentialsError(f"cannot reach the auth URL of {who}: {reason}") from None
            raise CredentialsError(f"no Keystone found at the auth URL of {who}: {first_line(exc)}") from None
        except ks.ClientException as exc:
            raise CredentialsError(f"cannot authenticate {who}: {first_line(exc)}") from None

    def send(self, url: str, method: str, *, json: Any = None, params: dict | None = None,
             headers: dict[str, str] | None = None):
        """One HTTP call, its response whatever the status (keystoneauth raises for no answer)."""
        return self.session.request(url, method, json=json, params=params, headers=headers,
                                    raise_exc=False, allow_reauth=False)


@dataclass
class Retry:
    """How hard a RetryingClient tries: `retries` more attempts after the first, backing off
    from `backoff` seconds (doubling, at most `max_backoff`, with jitter)."""

    retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0


class RetryingClient(CloudSession):
    """Calls that are not load: each retried with backoff on 5xx, 408/429, resets and timeouts,
    within one deadline; no Locust events. The sweep, `novastress-cleanup` and the fault checks."""

    TRANSIENT = (408, 429, 500, 502, 503, 504)
    # 2.10: an admin may list and delete the keypairs of another user (isolated users' keypairs)
    COMPUTE_MICROVERSION = "2.10"

    def __init__(self, target: CloudTarget, retry: Retry, deadline: float, auth: Any = None, *,
                 timeout: float | None = 30.0, endpoints: dict | None = None) -> None:
        super().__init__(target, auth or target.plugin(), timeout=timeout, endpoints=endpoints)
        self.retry = retry
        self.deadline = deadline

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def authenticate(self) -> None:
        """A token now, retried through a restarting Keystone; CredentialsError (one line) when
        the credentials are refused or the cloud stays out of reach."""
        who = f"{self.target.who} ({self.target.source})"
        try:
            with quiet_discovery():
                self._retry(self.session.get_token, "authenticate")
        except CallFailed as exc:
            if exc.status == 401:
                raise CredentialsError(f"authentication failed for {who}: the cloud answered 401; check "
                                       f"the password / application credential") from None
            raise CredentialsError(f"cannot authenticate {who}: {exc}") from None

    def endpoint(self, service: str) -> str | None:
        return self._retry(lambda: super(RetryingClient, self).endpoint(service), "catalog")

    def call(self, service_type: str, method: str, path: str, *, params: dict | None = None,
             json: Any = None, expect: tuple[int, ...] = (200,), retry_on: tuple[int, ...] = (),
             name: str | None = None, microversion: str | None = None):
        """One API call (kinds.Call), retried on transient trouble; CallFailed when it gives up.
        (`name` names a Locust request; this client fires none.)"""
        endpoint = self.endpoint(service_type)
        if endpoint is None:
            raise CallFailed(f"no {service_type} endpoint in the catalog")
        microversion = microversion or (self.COMPUTE_MICROVERSION if service_type == "compute" else None)
        headers = {"OpenStack-API-Version": f"{service_type} {microversion}"} if microversion else {}
        label = f"{method} {service_type} {path}"

        def once():
            response = self.send(endpoint + path, method, params=params, json=json, headers=headers)
            if response.status_code in expect:
                return response
            error = CallFailed(f"{label} -> {response.status_code} {error_message(response)}",
                               response.status_code)
            error.transient = response.status_code in self.TRANSIENT + retry_on
            raise error
        return self._retry(once, label)

    def _retry(self, function: Callable[[], Any], label: str):
        from keystoneauth1 import exceptions as ks
        delay = self.retry.backoff
        for attempt in itertools.count(1):
            try:
                return function()
            except CallFailed as exc:
                if not exc.transient:
                    raise
                error = exc
            except ks.Unauthorized:
                raise CallFailed(f"{label}: the cloud answered 401 (credentials rejected)", 401) from None
            except (ks.ConnectFailure, ks.ConnectionError, ks.RetriableConnectionFailure,
                    ks.DiscoveryFailure) as exc:
                error = CallFailed(f"{label}: {type(exc).__name__}: {first_line(exc)}")
            except ks.HttpError as exc:  # raised by the catalog/auth calls
                if exc.http_status not in self.TRANSIENT:
                    raise CallFailed(f"{label}: {first_line(exc)}", exc.http_status) from None
                error = CallFailed(f"{label}: {first_line(exc)}", exc.http_status)
            if attempt > self.retry.retries or self.remaining() <= 0:
                raise CallFailed(f"{error} (gave up after {attempt} attempts)", error.status)
            # jitter: many workers retrying in step would hit a struggling cloud together
            pause = min(delay, self.retry.max_backoff, max(0.0, self.remaining()))
            time.sleep(pause * random.uniform(0.75, 1.25))
            delay *= 2


def _connection_reason(text: str) -> str | None:
    """`Connection refused`, `Name or service not known`…: the socket's own words, if any."""
    if found := re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text):
        return found.group(1).strip()
    if "Unable to establish connection" in text or "timed out" in text.lower():
        return "unable to establish a connection"
    return None
