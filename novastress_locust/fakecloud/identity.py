"""Keystone v3: password/token/application-credential auth, catalog, admin calls."""
from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field

from .http import Response
from .service import ApiError, Call, Service, now_iso

DEFAULT_DOMAIN = {"id": "default", "name": "Default"}


def _hex_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Project:
    id: str
    name: str
    description: str = ""
    enabled: bool = True
    domain_id: str = "default"


@dataclass
class User:
    id: str
    name: str
    password: str
    enabled: bool = True
    domain_id: str = "default"
    default_project_id: str | None = None


@dataclass
class Role:
    id: str
    name: str


@dataclass
class AppCredential:
    id: str
    name: str
    secret: str
    user_id: str
    project_id: str
    roles: list[str]


@dataclass
class Token:
    id: str = field(repr=False)
    user_id: str
    user_name: str
    project_id: str | None
    project_name: str | None
    roles: list[Role]
    methods: list[str]
    issued_at: float
    expires_at: float
    audit_id: str

    @property
    def is_admin(self) -> bool:
        return any(role.name == "admin" for role in self.roles)


class Identity(Service):
    name = "identity"
    prefix = "/identity"
    log_name = "keystone"

    def setup(self) -> None:
        self.projects: dict[str, Project] = {}
        self.users: dict[str, User] = {}
        self.roles: dict[str, Role] = {}
        self.assignments: set[tuple[str, str, str]] = set()  # (project, user, role)
        self.tokens: dict[str, Token] = {}
        self.app_credentials: dict[str, AppCredential] = {}
        for name in ("admin", "member", "reader"):
            role = Role(_hex_id(), name)
            self.roles[role.id] = role
        r = self.router
        r.add("GET", "", self.versions, auth=False)
        r.add("GET", "/v3", self.version, auth=False)
        r.add("POST", "/v3/auth/tokens", self.issue_token, auth=False)
        r.add("GET", "/v3/auth/tokens", self.validate_token)
        r.add("DELETE", "/v3/auth/tokens", self.revoke_token)
        r.add("GET", "/v3/auth/catalog", self.get_catalog)
        r.add("GET", "/v3/auth/projects", self.auth_projects)
        r.add("GET", "/v3/domains", self.list_domains)
        r.add("GET", "/v3/domains/{domain_id}", self.show_domain)
        r.add("GET", "/v3/projects", self.list_projects)
        r.add("POST", "/v3/projects", self.create_project)
        r.add("GET", "/v3/projects/{project_id}", self.show_project)
        r.add("DELETE", "/v3/projects/{project_id}", self.delete_project)
        r.add("GET", "/v3/users", self.list_users)
        r.add("POST", "/v3/users", self.create_user)
        r.add("GET", "/v3/users/{user_id}", self.show_user)
        r.add("DELETE", "/v3/users/{user_id}", self.delete_user)
        r.add("GET", "/v3/users/{user_id}/projects", self.user_projects)
        r.add("POST", "/v3/users/{user_id}/application_credentials", self.create_app_credential)
        r.add("DELETE", "/v3/users/{user_id}/application_credentials/{credential_id}",
              self.delete_app_credential)
        r.add("GET", "/v3/roles", self.list_roles)
        r.add("GET", "/v3/role_assignments", self.list_assignments)
        r.add("PUT", "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", self.grant)
        r.add("HEAD", "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", self.check_grant)
        r.add("DELETE", "/v3/projects/{project_id}/users/{user_id}/roles/{role_id}", self.revoke)
        r.add("GET", "/v3/services", self.list_services)
        r.add("GET", "/v3/endpoints", self.list_endpoints)
        r.add("GET", "/v3/regions", self.list_regions)

    # -- data --------------------------------------------------------------
    def role_named(self, name: str) -> Role:
        for role in self.roles.values():
            if role.name == name:
                return role
        raise KeyError(name)

    def add_project(self, name: str, description: str = "") -> Project:
        project = Project(_hex_id(), name, description)
        self.projects[project.id] = project
        return project

    def add_user(self, name: str, password: str, project: Project | None = None,
                 roles: tuple[str, ...] = ()) -> User:
        user = User(_hex_id(), name, password, default_project_id=project.id if project else None)
        self.users[user.id] = user
        for role in roles:
            self.assignments.add((project.id, user.id, self.role_named(role).id))
        return user

    def roles_of(self, user_id: str, project_id: str | None) -> list[Role]:
        if project_id is None:
            return []
        return [self.roles[r] for (p, u, r) in sorted(self.assignments)
                if p == project_id and u == user_id and r in self.roles]

    def authenticate(self, token_id: str | None) -> Token:
        """The token of a service call, as keystonemiddleware checks it."""
        token = self.tokens.get(token_id or "")
        if token is None or token.expires_at <= time.time():
            raise ApiError(401, "The request you have made requires authentication.", "unauthorized",
                           [("WWW-Authenticate", f'Keystone uri="{self.url}/v3"')])
        if token.user_id not in self.users:
            raise ApiError(401, "The request you have made requires authentication.", "unauthorized",
                           [("WWW-Authenticate", f'Keystone uri="{self.url}/v3"')])
        return token

    # -- catalog -----------------------------------------------------------
    def catalog(self) -> list[dict]:
        region = self.cloud.config.region
        entries = []
        for service_type, name, url in self.cloud.catalog_entries():
            endpoints = [{"id": uuid.uuid5(uuid.NAMESPACE_URL, f"{url}#{iface}").hex,
                          "interface": iface, "region_id": region, "url": url, "region": region}
                         for iface in ("public", "internal", "admin")]
            entries.append({"endpoints": endpoints,
                            "id": uuid.uuid5(uuid.NAMESPACE_URL, service_type).hex,
                            "type": service_type, "name": name})
        return entries

    # -- version documents -------------------------------------------------
    def _version_doc(self) -> dict:
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.url}/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}

    def versions(self, call: Call) -> Response:
        return Response.json(300, {"versions": {"values": [self._version_doc()]}},
                             [("Location", f"{self.url}/v3/")])

    def version(self, call: Call) -> Response:
        return Response.json(200, {"version": self._version_doc()})

    # -- tokens ------------------------------------------------------------
    def _unauthorized(self) -> ApiError:
        return ApiError(401, "The request you have made requires authentication.", "unauthorized",
                        [("WWW-Authenticate", f'Keystone uri="{self.url}/v3"')])

    def _find_user(self, spec: dict) -> User | None:
        if "id" in spec:
            return self.users.get(spec["id"])
        domain = spec.get("domain") or {}
        domain_ok = domain.get("id", "default") == "default" or domain.get("name") == "Default"
        for user in self.users.values():
            if user.name == spec.get("name") and domain_ok:
                return user
        return None

    def _find_project(self, spec: dict) -> Project | None:
        if "id" in spec:
            return self.projects.get(spec["id"])
        for project in self.projects.values():
            if project.name == spec.get("name"):
                return project
        return None

    def issue_token(self, call: Call) -> Response:
        body = call.body()
        try:
            identity = body["auth"]["identity"]
            methods = list(identity["methods"])
        except (KeyError, TypeError):
            raise ApiError(400, "Expecting to find identity in auth. The server could not comply "
                                "with the request since it is either malformed or otherwise "
                                "incorrect. The client is assumed to be in error.") from None
        scope = (body["auth"].get("scope") or {}) if isinstance(body["auth"], dict) else {}
        user: User | None = None
        project: Project | None = None
        if "password" in methods:
            spec = identity.get("password", {}).get("user", {})
            user = self._find_user(spec)
            if user is None or not secrets.compare_digest(user.password, str(spec.get("password", ""))):
                self.log(call, "WARNING", "keystone.server.flask.application",
                         "Authorization failed. The request you have made requires authentication.")
                raise self._unauthorized()
        elif "token" in methods:
            old = self.tokens.get(identity.get("token", {}).get("id", ""))
            if old is None or old.expires_at <= time.time():
                raise self._unauthorized()
            user = self.users.get(old.user_id)
            if old.project_id and not scope:
                project = self.projects.get(old.project_id)
        elif "application_credential" in methods:
            spec = identity.get("application_credential", {})
            credential = self.app_credentials.get(spec.get("id", ""))
            if credential is None and "name" in spec:
                owner = self._find_user(spec.get("user", {}))
                credential = next((c for c in self.app_credentials.values()
                                   if owner and c.user_id == owner.id and c.name == spec["name"]), None)
            if credential is None or not secrets.compare_digest(credential.secret,
                                                                str(spec.get("secret", ""))):
                raise self._unauthorized()
            user = self.users.get(credential.user_id)
            project = self.projects.get(credential.project_id)
        else:
            raise ApiError(401, "Attempted to authenticate with an unsupported method.", "unauthorized")
        if user is None or not user.enabled:
            raise self._unauthorized()
        if "project" in scope:
            project = self._find_project(scope["project"])
            if project is None:
                raise self._unauthorized()
            if not self.roles_of(user.id, project.id):
                raise self._unauthorized()
        roles = self.roles_of(user.id, project.id) if project else []
        now = time.time()
        token = Token(id="gAAAAA" + secrets.token_urlsafe(120), user_id=user.id, user_name=user.name,
                      project_id=project.id if project else None,
                      project_name=project.name if project else None, roles=roles,
                      methods=methods, issued_at=now, expires_at=now + self.cloud.config.token_ttl,
                      audit_id=secrets.token_urlsafe(16)[:22])
        self.tokens[token.id] = token
        return Response.json(201, self._token_body(token),
                             [("X-Subject-Token", token.id), ("Vary", "X-Auth-Token")])

    def _token_body(self, token: Token) -> dict:
        body = {"methods": token.methods,
                "user": {"domain": DEFAULT_DOMAIN, "id": token.user_id, "name": token.user_name,
                         "password_expires_at": None},
                "audit_ids": [token.audit_id],
                "expires_at": now_iso(token.expires_at, micro=True) + "Z",
                "issued_at": now_iso(token.issued_at, micro=True) + "Z"}
        if token.project_id:
            body["project"] = {"domain": DEFAULT_DOMAIN, "id": token.project_id,
                               "name": token.project_name}
            body["is_domain"] = False
            body["roles"] = [{"id": role.id, "name": role.name} for role in token.roles]
            body["catalog"] = self.catalog()
        return {"token": body}

    def validate_token(self, call: Call) -> Response:
        subject = self.tokens.get(call.request.header("x-subject-token", ""))
        if subject is None or subject.expires_at <= time.time():
            raise ApiError(404, "Could not recognize Fernet token", "notfound")
        return Response.json(200, self._token_body(subject), [("X-Subject-Token", subject.id)])

    def revoke_token(self, call: Call) -> Response:
        self.tokens.pop(call.request.header("x-subject-token", ""), None)
        return Response(204)

    def expire_tokens(self) -> int:
        """Fault injection: every token issued so far expires now."""
        count = len(self.tokens)
        for token in self.tokens.values():
            token.expires_at = 0
        return count

    def get_catalog(self, call: Call) -> Response:
        return Response.json(200, {"catalog": self.catalog(), "links": {"self": f"{self.url}/v3/auth/catalog"}})

    # -- domains / projects / users / roles ---------------------------------
    def _domain(self) -> dict:
        return {"id": "default", "name": "Default", "description": "The default domain",
                "enabled": True, "tags": [], "options": {},
                "links": {"self": f"{self.url}/v3/domains/default"}}

    def list_domains(self, call: Call) -> Response:
        return Response.json(200, {"domains": [self._domain()], "links": {"self": f"{self.url}/v3/domains"}})

    def show_domain(self, call: Call, domain_id: str) -> Response:
        if domain_id != "default":
            raise ApiError(404, f"Could not find domain: {domain_id}.")
        return Response.json(200, {"domain": self._domain()})

    def _project_view(self, project: Project) -> dict:
        return {"id": project.id, "name": project.name, "domain_id": project.domain_id,
                "description": project.description, "enabled": project.enabled,
                "parent_id": project.domain_id, "is_domain": False, "tags": [], "options": {},
                "links": {"self": f"{self.url}/v3/projects/{project.id}"}}

    def _user_view(self, user: User) -> dict:
        view = {"id": user.id, "name": user.name, "domain_id": user.domain_id,
                "enabled": user.enabled, "password_expires_at": None, "options": {},
                "links": {"self": f"{self.url}/v3/users/{user.id}"}}
        if user.default_project_id:
            view["default_project_id"] = user.default_project_id
        return view

    def _may_read(self, call: Call, project_id: str | None = None, user_id: str | None = None) -> None:
        token = call.token
        if token.is_admin or (project_id and project_id == token.project_id) or \
                (user_id and user_id == token.user_id):
            return
        raise ApiError(403, "You are not authorized to perform the requested action: "
                            "identity:get_project.", "forbidden")

    def list_projects(self, call: Call) -> Response:
        self.require_admin(call)
        name = call.request.arg("name")
        projects = [self._project_view(p) for p in self.projects.values() if name in (None, p.name)]
        return Response.json(200, {"projects": projects, "links": {"self": f"{self.url}/v3/projects"}})

    def create_project(self, call: Call) -> Response:
        self.require_admin(call)
        spec = call.body().get("project") or {}
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ApiError(400, "Invalid input for field 'name': None is not of type 'string'")
        if any(p.name == spec["name"] for p in self.projects.values()):
            raise ApiError(409, f"Conflict occurred attempting to store project - it is not permitted "
                                f"to have two projects with the same name in the same domain : "
                                f"{spec['name']}.", "conflict")
        project = self.add_project(spec["name"], spec.get("description", ""))
        self.cloud.on_project_created(project)
        return Response.json(201, {"project": self._project_view(project)})

    def show_project(self, call: Call, project_id: str) -> Response:
        self._may_read(call, project_id=project_id)
        project = self.projects.get(project_id)
        if project is None:
            raise ApiError(404, f"Could not find project: {project_id}.", "notfound")
        return Response.json(200, {"project": self._project_view(project)})

    def delete_project(self, call: Call, project_id: str) -> Response:
        self.require_admin(call)
        if self.projects.pop(project_id, None) is None:
            raise ApiError(404, f"Could not find project: {project_id}.", "notfound")
        self.assignments = {a for a in self.assignments if a[0] != project_id}
        return Response(204)

    def auth_projects(self, call: Call) -> Response:
        return self.user_projects(call, call.token.user_id)

    def user_projects(self, call: Call, user_id: str) -> Response:
        self._may_read(call, user_id=user_id)
        ids = {p for (p, u, _) in self.assignments if u == user_id}
        projects = [self._project_view(self.projects[p]) for p in ids if p in self.projects]
        return Response.json(200, {"projects": projects, "links": {"self": call.request.path}})

    def list_users(self, call: Call) -> Response:
        self.require_admin(call)
        name = call.request.arg("name")
        users = [self._user_view(u) for u in self.users.values() if name in (None, u.name)]
        return Response.json(200, {"users": users, "links": {"self": f"{self.url}/v3/users"}})

    def create_user(self, call: Call) -> Response:
        self.require_admin(call)
        spec = call.body().get("user") or {}
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ApiError(400, "Invalid input for field 'name': None is not of type 'string'")
        if any(u.name == spec["name"] for u in self.users.values()):
            raise ApiError(409, f"Conflict occurred attempting to store user - Duplicate entry found "
                                f"with name {spec['name']} at domain ID default.", "conflict")
        user = User(_hex_id(), spec["name"], str(spec.get("password") or secrets.token_hex(16)),
                    enabled=bool(spec.get("enabled", True)),
                    default_project_id=spec.get("default_project_id"))
        self.users[user.id] = user
        return Response.json(201, {"user": self._user_view(user)})

    def show_user(self, call: Call, user_id: str) -> Response:
        self._may_read(call, user_id=user_id)
        user = self.users.get(user_id)
        if user is None:
            raise ApiError(404, f"Could not find user: {user_id}.", "notfound")
        return Response.json(200, {"user": self._user_view(user)})

    def delete_user(self, call: Call, user_id: str) -> Response:
        self.require_admin(call)
        if self.users.pop(user_id, None) is None:
            raise ApiError(404, f"Could not find user: {user_id}.", "notfound")
        self.assignments = {a for a in self.assignments if a[1] != user_id}
        for token_id in [t.id for t in self.tokens.values() if t.user_id == user_id]:
            del self.tokens[token_id]
        return Response(204)

    def create_app_credential(self, call: Call, user_id: str) -> Response:
        if call.token.user_id != user_id:
            raise ApiError(403, "You are not authorized to perform the requested action.", "forbidden")
        spec = call.body().get("application_credential") or {}
        if not spec.get("name"):
            raise ApiError(400, "Invalid input for field 'name'")
        credential = AppCredential(_hex_id(), spec["name"], spec.get("secret") or secrets.token_urlsafe(32),
                                   user_id, call.token.project_id, [r.id for r in call.token.roles])
        self.app_credentials[credential.id] = credential
        return Response.json(201, {"application_credential": {
            "id": credential.id, "name": credential.name, "secret": credential.secret,
            "project_id": credential.project_id, "user_id": user_id, "unrestricted": False,
            "expires_at": None, "description": spec.get("description"),
            "roles": [{"id": r.id, "name": r.name} for r in call.token.roles]}})

    def delete_app_credential(self, call: Call, user_id: str, credential_id: str) -> Response:
        credential = self.app_credentials.get(credential_id)
        if credential is None or credential.user_id != user_id:
            raise ApiError(404, f"Could not find Application Credential: {credential_id}.", "notfound")
        del self.app_credentials[credential_id]
        return Response(204)

    def list_roles(self, call: Call) -> Response:
        name = call.request.arg("name")
        roles = [{"id": r.id, "name": r.name, "domain_id": None, "description": None, "options": {},
                  "links": {"self": f"{self.url}/v3/roles/{r.id}"}}
                 for r in self.roles.values() if name in (None, r.name)]
        return Response.json(200, {"roles": roles, "links": {"self": f"{self.url}/v3/roles"}})

    def list_assignments(self, call: Call) -> Response:
        self.require_admin(call)
        user = call.request.arg("user.id")
        project = call.request.arg("scope.project.id")
        rows = [{"role": {"id": r}, "user": {"id": u}, "scope": {"project": {"id": p}},
                 "links": {"assignment": f"{self.url}/v3/projects/{p}/users/{u}/roles/{r}"}}
                for (p, u, r) in sorted(self.assignments)
                if user in (None, u) and project in (None, p)]
        return Response.json(200, {"role_assignments": rows, "links": {"self": call.request.path}})

    def _assignment(self, project_id: str, user_id: str, role_id: str) -> tuple[str, str, str]:
        if project_id not in self.projects:
            raise ApiError(404, f"Could not find project: {project_id}.", "notfound")
        if user_id not in self.users:
            raise ApiError(404, f"Could not find user: {user_id}.", "notfound")
        if role_id not in self.roles:
            raise ApiError(404, f"Could not find role: {role_id}.", "notfound")
        return (project_id, user_id, role_id)

    def grant(self, call: Call, project_id: str, user_id: str, role_id: str) -> Response:
        self.require_admin(call)
        self.assignments.add(self._assignment(project_id, user_id, role_id))
        return Response(204)

    def check_grant(self, call: Call, project_id: str, user_id: str, role_id: str) -> Response:
        self.require_admin(call)
        if self._assignment(project_id, user_id, role_id) not in self.assignments:
            raise ApiError(404, "Could not find role assignment.", "notfound")
        return Response(204)

    def revoke(self, call: Call, project_id: str, user_id: str, role_id: str) -> Response:
        self.require_admin(call)
        key = self._assignment(project_id, user_id, role_id)
        if key not in self.assignments:
            raise ApiError(404, "Could not find role assignment.", "notfound")
        self.assignments.discard(key)
        return Response(204)

    def list_services(self, call: Call) -> Response:
        services = [{"id": entry["id"], "type": entry["type"], "name": entry["name"], "enabled": True,
                     "description": None, "links": {"self": f"{self.url}/v3/services/{entry['id']}"}}
                    for entry in self.catalog()]
        return Response.json(200, {"services": services, "links": {"self": f"{self.url}/v3/services"}})

    def list_endpoints(self, call: Call) -> Response:
        endpoints = []
        for entry in self.catalog():
            for endpoint in entry["endpoints"]:
                endpoints.append({**endpoint, "service_id": entry["id"], "enabled": True,
                                  "links": {"self": f"{self.url}/v3/endpoints/{endpoint['id']}"}})
        return Response.json(200, {"endpoints": endpoints, "links": {"self": f"{self.url}/v3/endpoints"}})

    def list_regions(self, call: Call) -> Response:
        region = self.cloud.config.region
        return Response.json(200, {"regions": [{"id": region, "description": "", "parent_region_id": None,
                                                "links": {"self": f"{self.url}/v3/regions/{region}"}}],
                                   "links": {"self": f"{self.url}/v3/regions"}})
