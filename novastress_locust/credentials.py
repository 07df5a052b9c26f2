"""Which cloud to load, and with which credentials: options > clouds.yaml > OS_* > tempest.conf.

    target = resolve(environment.parsed_options)      # None: nothing configured
    session = target.session(target.plugin())         # a keystoneauth Session

Any keystoneauth auth type works (`--os-auth-type`, `auth_type:` in clouds.yaml,
`OS_AUTH_TYPE`): its options are checked against `keystoneauth1.loading`. Errors a user
can cause raise `CredentialsError` whose text is one line naming the source and the fix.
"""
from __future__ import annotations

import configparser
import hashlib
import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from . import options as novastress_options
from .errors import UserError


class CredentialsError(UserError):
    """A configuration problem the user can fix; str() is one clear line."""


# auth keys common to most auth types, as option dest (os_<key>) and OS_<KEY> variable
AUTH_KEYS = ("auth_url", "username", "user_id", "password", "project_name", "project_id",
             "user_domain_name", "user_domain_id", "project_domain_name", "project_domain_id",
             "application_credential_id", "application_credential_name",
             "application_credential_secret", "token", "domain_name", "domain_id", "system_scope",
             "trust_id")
SECRET_KEYS = frozenset({"password", "application_credential_secret", "token", "client_secret",
                         "passcode"})
# settings beside the auth dict
SETTING_KEYS = ("auth_type", "region_name", "interface", "cacert", "insecure")
ENV_ALIASES = {"OS_TENANT_NAME": "project_name", "OS_TENANT_ID": "project_id",
               "OS_ENDPOINT_TYPE": "interface"}
# the catalog types a service goes by, in order of preference: clouds list Cinder v3 as
# block-storage, volumev3 or (older ones) volume
CATALOG_TYPES = dict.fromkeys(("volume", "block-storage"), ("block-storage", "volumev3", "volume"))


@dataclass
class CloudTarget:
    """A cloud to talk to: auth type and options, region, interface, TLS settings."""

    auth_type: str
    auth: dict[str, Any]
    source: str
    region_name: str | None = None
    interface: str = "public"
    verify: bool | str = True
    # what tempest.conf says to boot, at the lowest precedence
    image: str | None = None
    flavor: str | None = None
    network: str | None = None
    stress: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Identifies the credential: users with the same key share one auth plugin (one token)."""
        material = json.dumps([self.auth_type, self.auth, self.region_name, self.interface],
                              sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    @property
    def who(self) -> str:
        """The credential in words, without secrets."""
        user = self.auth.get("username") or self.auth.get("user_id") \
            or self.auth.get("application_credential_name") \
            or self.auth.get("application_credential_id") or self.auth_type
        project = self.auth.get("project_name") or self.auth.get("project_id")
        where = self.auth.get("auth_url", "?")
        return f"{user}{'/' + project if project else ''} at {where}"

    def plugin(self):
        """A keystoneauth auth plugin built through keystoneauth1.loading."""
        from keystoneauth1 import exceptions as ks_exceptions
        from keystoneauth1 import loading

        try:
            loader = loading.get_plugin_loader(self.auth_type)
        except ks_exceptions.NoMatchingPlugin:
            raise CredentialsError(f"unknown auth type {self.auth_type!r} ({self.source}); "
                                   f"known: {', '.join(sorted(loading.get_available_plugin_names()))}") from None
        known = {opt.dest for opt in loader.get_options()}
        unknown = sorted(set(self.auth) - known)
        if unknown:
            raise CredentialsError(f"auth type {self.auth_type} has no option {', '.join(unknown)} "
                                   f"({self.source}); its options: {', '.join(sorted(known))}")
        try:
            return loader.load_from_options(**self.auth)
        except ks_exceptions.MissingRequiredOptions as exc:
            missing = ", ".join(opt.dest for opt in exc.options)
            raise CredentialsError(f"auth type {self.auth_type} needs {missing} ({self.source}); "
                                   f"set --os-{missing.split(', ')[0].replace('_', '-')} or the "
                                   f"matching OS_* variable / clouds.yaml key") from None

    def session(self, auth, transport=None):
        """A keystoneauth Session for `auth`; `transport` is an optional requests.Session."""
        from keystoneauth1 import session as ks_session
        verify = self.verify
        if transport is None:
            transport, verify = _transport(str(self.auth.get("auth_url", "")), verify)
        return ks_session.Session(auth=auth, verify=verify, session=transport,
                                  app_name="novastress-locust")

    def endpoint(self, session, service: str) -> str | None:
        """The URL of `service` in the catalog of the session's token; None when the catalog does
        not list it. The one answer to "is this service here?": a cloud without Cinder or Neutron
        is no error, each caller skips what needs it.

            target.endpoint(session, "volume")    # Cinder v3 under whichever type it is listed

        Authentication problems still raise keystoneauth's exceptions.
        """
        from keystoneauth1 import exceptions as ks
        for service_type in CATALOG_TYPES.get(service, (service,)):
            try:
                url = session.get_endpoint(service_type=service_type, interface=self.interface,
                                           region_name=self.region_name)
            except ks.CatalogException:  # EndpointNotFound, EmptyCatalog: not in this catalog
                continue
            if url:
                url = url.rstrip("/")
                # Keystone's catalog URL ends in /v3 in some clouds and not in others: callers
                # say /v3/... themselves
                return re.sub(r"/v3$", "", url) if service == "identity" else url
        return None


@contextmanager
def quiet_discovery():
    """keystoneauth warns about a failed version discovery before it raises; the caller's one
    clear line says it all, so the warning is held back while authenticating."""
    discovery_log = logging.getLogger("keystoneauth.identity.generic.base")
    level = discovery_log.level
    discovery_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        discovery_log.setLevel(level)


def _transport(auth_url: str, verify: bool | str):
    """A requests.Session that reads the environment once, not on every call.

    requests scans every environment variable for proxy settings on each request (a fifth of
    a call's client CPU here). Without a proxy for the cloud we turn that off, keeping a
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE it would have used.
    """
    import requests
    from requests.utils import get_environ_proxies

    transport = requests.Session()
    if get_environ_proxies(auth_url):
        return transport, verify
    transport.trust_env = False
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return transport, verify


def resolve(parsed_options, environ: Mapping[str, str] | None = None) -> CloudTarget | None:
    """The configured cloud, merging every source by precedence; None when nothing is configured."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = []  # lowest precedence first
    tempest: dict[str, Any] = {}
    tempest_path = getattr(parsed_options, "tempest_conf", None)
    if tempest_path:
        tempest = read_tempest_conf(tempest_path)
        layers.append((f"tempest.conf {tempest_path}", tempest["cloud"]))
    layers.append(("OS_* environment", from_environment(environ)))
    cloud_name = getattr(parsed_options, "os_cloud", None) or environ.get("OS_CLOUD")
    if cloud_name:
        layers.append((f"clouds.yaml cloud {cloud_name!r}", from_clouds_yaml(cloud_name, environ)))
    layers.append(("command line / locust.conf", from_options(parsed_options)))

    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, values in layers:
        for key, value in values.items():
            if value is not None and value != "":
                merged[key] = value
                origin[key] = source
    if not merged.get("auth_url") and not cloud_name:
        if any(merged.get(k) for k in ("username", "password", "application_credential_id", "token")):
            raise CredentialsError("credentials are set but no auth URL: set --os-auth-url or "
                                   "OS_AUTH_URL (or use --os-cloud with a clouds.yaml)")
        return None

    settings = {key: merged.pop(key) for key in SETTING_KEYS if key in merged}
    auth_type = str(settings.get("auth_type") or _guess_auth_type(merged))
    auth = dict(merged)
    if auth_type in ("password", "v3password", "v3applicationcredential"):
        # Keystone v3 needs a domain with a name; Default is what devstack and most clouds use
        for name, domain in (("username", "user_domain"), ("project_name", "project_domain")):
            if auth.get(name) and not (auth.get(f"{domain}_name") or auth.get(f"{domain}_id")):
                auth[f"{domain}_name"] = "Default"
    sources = sorted(set(origin.values()), key=[name for name, _ in layers].index)
    verify: bool | str = str(settings["cacert"]) if settings.get("cacert") else True
    if settings.get("insecure") in (True, "true", "True", "1", "yes"):
        verify = False
    return CloudTarget(auth_type=auth_type, auth=auth, source=" + ".join(reversed(sources)),
                       region_name=settings.get("region_name"),
                       interface=str(settings.get("interface") or "public"), verify=verify,
                       image=tempest.get("image"), flavor=tempest.get("flavor"),
                       network=tempest.get("network"), stress=tempest.get("stress", {}))


def _guess_auth_type(auth: Mapping[str, Any]) -> str:
    if auth.get("application_credential_id") or auth.get("application_credential_secret"):
        return "v3applicationcredential"
    if auth.get("token") and not auth.get("password"):
        return "token"
    return "password"


def from_options(parsed_options) -> dict[str, Any]:
    values: dict[str, Any] = {key: getattr(parsed_options, f"os_{key}", None)
                              for key in (*AUTH_KEYS, "auth_type", "region_name", "interface", "cacert")}
    values["insecure"] = True if getattr(parsed_options, "insecure", False) else None
    for item in getattr(parsed_options, "os_auth_option", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CredentialsError(f"--os-auth-option {item!r}: use KEY=VALUE, e.g. "
                                   f"--os-auth-option system_scope=all")
        values[key.strip().replace("-", "_")] = value
    return values


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("OS_") or name in ("OS_CLOUD", "OS_CLIENT_CONFIG_FILE"):
            continue
        key = ENV_ALIASES.get(name, name[3:].lower())
        if key in AUTH_KEYS or key in SETTING_KEYS:
            values[key] = value
    return values


def clouds_yaml_paths(environ: Mapping[str, str]) -> list[Path]:
    """The standard search paths of os-client-config / openstacksdk, in order."""
    paths = [Path(environ["OS_CLIENT_CONFIG_FILE"])] if environ.get("OS_CLIENT_CONFIG_FILE") else []
    home = Path(environ.get("HOME", str(Path.home())))
    config_home = Path(environ.get("XDG_CONFIG_HOME", str(home / ".config")))
    for directory in (Path.cwd(), config_home / "openstack", Path("/etc/openstack")):
        paths += [directory / "clouds.yaml", directory / "clouds.yml"]
    return paths


def _load_yaml(path: Path) -> dict:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{path} is not a clouds.yaml mapping")
    return document


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and \
            isinstance(merged.get(key), dict) else value
    return merged


def from_clouds_yaml(cloud_name: str, environ: Mapping[str, str]) -> dict[str, Any]:
    searched = clouds_yaml_paths(environ)
    found = next((p for p in searched if p.is_file()), None)
    if found is None:
        raise CredentialsError(f"cloud {cloud_name!r} requested (--os-cloud/OS_CLOUD) but no clouds.yaml "
                               f"found; searched {', '.join(str(p) for p in searched[:4])}...")
    clouds = _load_yaml(found).get("clouds") or {}
    entry = clouds.get(cloud_name)
    if entry is None:
        raise CredentialsError(f"cloud {cloud_name!r} is not in {found}; its clouds: {', '.join(clouds) or 'none'}")
    secure = found.with_name("secure.yaml")
    if secure.is_file():
        entry = _deep_merge(entry, (_load_yaml(secure).get("clouds") or {}).get(cloud_name) or {})
    values = {**(entry.get("auth") or {}), "auth_type": entry.get("auth_type"),
              "region_name": entry.get("region_name") or (entry.get("regions") or [None])[0],
              "interface": entry.get("interface") or entry.get("endpoint_type"), "cacert": entry.get("cacert")}
    if entry.get("verify") is False or entry.get("insecure") is True:
        values["insecure"] = True
    return values


def read_tempest_conf(path: str | os.PathLike) -> dict[str, Any]:
    """Admin credentials, image/flavor refs and the [stress] section of a tempest.conf."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        with open(path) as handle:
            parser.read_file(handle)
    except (OSError, configparser.Error) as exc:
        raise CredentialsError(f"cannot read --tempest-conf {path}: {str(exc).splitlines()[0]}") from None

    def get(section: str, key: str) -> str | None:
        return parser.get(section, key, fallback=None) or None

    auth_url = get("identity", "uri_v3") or get("identity", "uri")
    domain = get("auth", "admin_domain_name")
    cloud = {"auth_url": auth_url, "username": get("auth", "admin_username"),
             "password": get("auth", "admin_password"),
             "project_name": get("auth", "admin_project_name") or get("auth", "admin_tenant_name"),
             "user_domain_name": domain, "project_domain_name": domain,
             "region_name": get("identity", "region") or get("compute", "region"),
             "interface": (get("compute", "endpoint_type") or get("identity", "v3_endpoint_type") or "")
             .replace("URL", "") or None,
             "cacert": get("identity", "ca_certificates_file")}
    if (get("identity", "disable_ssl_certificate_validation") or "").lower() == "true":
        cloud["insecure"] = True
    stress = dict(parser.items("stress")) if parser.has_section("stress") else {}
    return {"cloud": cloud, "image": get("compute", "image_ref"), "flavor": get("compute", "flavor_ref"),
            "network": get("compute", "fixed_network_name"), "stress": stress}


def apply_tempest_stress(parsed_options, target: CloudTarget) -> list[str]:
    """Fill options still at their default from tempest.conf ([stress] and compute refs)."""
    applied: list[str] = []
    refs = {"image": target.image, "flavor": target.flavor, "network": target.network}
    for dest, value in refs.items():
        if value and novastress_options.is_default(parsed_options, dest):
            setattr(parsed_options, dest, value)
            applied.append(dest)
    for key, text in target.stress.items():
        dest = key.replace("-", "_")
        if not hasattr(parsed_options, dest) or not novastress_options.is_default(parsed_options, dest):
            continue
        try:
            setattr(parsed_options, dest, novastress_options.convert(dest, text, getattr(parsed_options, dest)))
        except (ValueError, TypeError) as exc:
            raise CredentialsError(f"tempest.conf [stress] {key} = {text!r}: {exc}") from None
        applied.append(dest)
    return applied


def export_to_options(parsed_options, credentials: Mapping[str, Any]) -> None:
    """Write credentials into parsed_options, which the master sends to workers at test start."""
    for key, value in credentials.items():
        setattr(parsed_options, f"os_{key}", value)


def redact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: ("***" if key in SECRET_KEYS and value else value) for key, value in values.items()}
