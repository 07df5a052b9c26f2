"""A standalone reproducer per finding: the requests that led to it, replayed on fresh resources.

    plan = replay_plan(finding, run)      # None: nothing in its timeline a reproducer can replay
    Path("repro.py").write_text(script(plan))
    # then, anywhere with Python and keystoneauth1:
    #   OS_CLOUD=mycloud python3 repro.py --times 20 --jitter 0.02

The plan keeps the finding's requests around the moment it happened (its 5xx, else the server DELETE the
cloud accepted), from the run's own credential and the peer's, with their relative timing (not those the
cloud refused with a 4xx: they changed nothing): server actions and deletes, volume attaches,
floating-IP associations, and a boot when a DELETE followed it (a delete during the build). Each try
makes what the steps need under `nsrepro-<tag>-<try>` — a volume per attach, a floating IP, a server
booted to ACTIVE (and shelved, say, when the first step is an unshelve) unless the boot is a step, a
server group of the policy for a burst's boots — fires the steps at their offsets (plus or minus the
jitter) from one thread each, lets things settle, and says whether the symptom came back: an answer of
500 or more, the server in ERROR or stuck in a task state, a volume still attached to the deleted
server, a floating IP bound to a port that is gone, a group's ACTIVE members on hosts its policy
forbids, Placement allocations of the deleted server or of its resize's migration (read with the peer
credential: an admin's; a migration's leaked allocation is deleted once reported). It deletes what it
made after every try, and on Ctrl-C (a volume left attached is reset first, as the peer may). A log-only
symptom is not visible over HTTP: with `--log-file` (the cloud's logs, readable where it runs) it is an
ERROR written during the try that names one of its requests and the finding's exception; without, each
try prints its request ids to look for in the logs.
"""
from __future__ import annotations

import json
import re

BEFORE, AFTER = 2.0, 0.5
# the server actions a reproducer replays (their bodies are the script's `body()`)
ACTION_BODIES = ("pause", "unpause", "suspend", "resume", "os-stop", "os-start", "lock", "unlock", "shelve",
                 "unshelve", "reboot", "resize", "confirmResize", "revertResize", "rebuild", "createImage")
# (method, route) -> the step the reproducer sends: on its server, a volume or floating IP it made
# an action and the one that must have finished before it (the reproducer's BRING): a plan that
# holds both starts at the second, its try brings the server there and waits until it is
SET_UP_BY = {"unshelve": "shelve", "unpause": "pause", "resume": "suspend", "os-start": "os-stop",
             "confirmResize": "resize", "revertResize": "resize"}
STEPS = {("POST", "/servers"): "boot", ("DELETE", "/servers/{id}"): "delete",
         ("POST", "/servers/{id}/os-volume_attachments"): "attach", ("PUT", "/v2.0/floatingips/{id}"): "associate"}


def replay_plan(finding, run: dict) -> dict | None:
    """What the reproducer of `finding` replays; None when its timeline holds no request it can send
    again (a boot alone, a snapshot's upload, a listing)."""
    steps = []
    clients: dict[str, str] = {}
    # the quota checks: what moves the usage counter (found at the end of the run, of no request),
    # and the quota step's boots racing past the limit
    whole = {"quota-usage-mismatch": "churn", "quota-exceeded": "quota"}.get(finding.key[1]) \
        if finding.kind == "invariant" else None
    if whole:
        return _plan(finding, run, [{"method": "POST", "route": "/servers", "action": whole, "at": 0.0,
                                     "client": "member"}])
    ours = [call for call in finding.timeline if call[4] in finding.request_ids]
    if not ours:
        return None
    burst = _burst(finding, ours)
    if burst is not None:
        # what a try judges: the policy, or (server-group-host-count) how many boots became ACTIVE
        judged = "host-count" if "host-count" in finding.title else "policy"
        return _plan(finding, run, burst[1], group=burst[0], judged=judged)
    anchor, until = _window(ours)
    for call in finding.timeline:
        at, method, name, status, _request_id, client, what = (list(call) + [""] * 7)[:7]
        # a request the cloud refused (a 409 of a server busy elsewhere) changed nothing to race
        if not anchor - BEFORE <= at <= until or (isinstance(status, int) and 400 <= status < 500):
            continue
        _service, _method, route = (str(name).split(" ", 2) + ["", ""])[:3]
        route = route.split(" ")[0].split("?")[0]     # "/servers/{id}/action reboot", "... (storm)"
        kind = STEPS.get((method, route))
        if method == "POST" and route == "/servers/{id}/action" and what in ACTION_BODIES:
            kind = what
        elif kind == "associate" and "disassociat" in str(name):
            kind = None
        if kind is None:
            continue
        # the run's credential ("Storm-1") or the second one ("Storm-1-peer", "...-admin")
        role = clients.setdefault(str(client), "peer" if re.search(r"-(peer|admin)$", str(client)) else "member")
        steps.append({"method": method, "route": route, "action": kind, "at": float(at), "client": role})
    steps, set_up_for = _from_set_up(_boot_raced(_unlocked(steps, anchor)))
    return _plan(finding, run, steps, bring=set_up_for) if steps else None


def _plan(finding, run: dict, steps: list[dict], group: str | None = None, judged: str | None = None,
          bring: str | None = None) -> dict:
    """The plan of these steps (offsets from the first), with what the script needs to know."""
    start = steps[0]["at"]
    for step in steps:
        step["at"] = round(step["at"] - start, 3)
    status = int(finding.key[3]) if finding.kind == "5xx" and len(finding.key) > 3 else None
    # the fault class Nova named in its 500 ("nova.exception.UnexpectedTaskStateError"): an answer
    # of that status naming another class is another bug
    cause = finding.key[4] if status and len(finding.key) > 4 and re.fullmatch(r"\w+(\.\w+)+", finding.key[4]) \
        else None
    if finding.kind == "log" and len(finding.key) > 3 and re.fullmatch(r"\w+(\.\w+)*", finding.key[3]):
        cause = finding.key[3]     # the exception the logged record names (its traceback's last line)
    profile = run.get("profile") or {}
    return {"title": finding.title, "finding": finding.id, "kind": finding.kind, "status": status,
            "cause": cause.rsplit(".", 1)[-1] if cause else None,
            "run_id": run.get("run_id"), "steps": steps[-40:], "flavor": profile.get("flavor") or "",
            "image": profile.get("image") or "", "network": profile.get("network") or "none",
            "request_ids": finding.request_ids[:10], "group": group, "judged": judged, "bring": bring}


def _burst(finding, ours: list[list]) -> tuple[str, list[dict]] | None:
    """A server-group burst (the finding's requests made a group, then booted into it at once):
    the group's policy, read from what the finding says, and the boots; None for anything else."""
    policy = re.search(r"\b(anti-affinity|affinity)\b", getattr(finding, "example", "") or "")
    grouped = [call for call in ours if call[1] == "POST" and "/os-server-groups" in str(call[2])]
    boots = [call for call in ours if call[1] == "POST" and str(call[2]).split(" ")[2:3] == ["/servers"]
             and (not grouped or call[0] >= grouped[0][0])]
    if policy is None or not grouped or len(boots) < 2:
        return None
    return policy.group(1), [{"method": "POST", "route": "/servers", "action": "boot", "at": float(call[0]),
                              "client": "member"} for call in boots]


def _window(ours: list[list]) -> tuple[float, float]:
    """The moment it happened and the last moment a replayed request may be sent: the call that
    answered the 5xx (up to its answer: a request sent later did not cause it), else the server
    DELETE the cloud accepted (what a volume, floating IP or allocation left behind raced), else the
    last call it names; the changes of the BEFORE seconds up to it (and AFTER past it) are the race."""
    failed = [call for call in ours if isinstance(call[3], int) and call[3] >= 500]
    if failed:
        # a call's time is when it was sent; its tenth column the ms it took to answer
        took = (list(failed[0]) + [0] * 10)[9]
        return failed[0][0], failed[0][0] + (took / 1000 if isinstance(took, (int, float)) else 0.0)
    deleted = [call for call in ours if call[1] == "DELETE" and str(call[2]).split(" ")[2:3] == ["/servers/{id}"]
               and call[3] == 204]
    anchor = (deleted or ours[-1:])[0][0]
    return anchor, anchor + AFTER


def _from_set_up(steps: list[dict]) -> tuple[list[dict], str | None]:
    """The steps after the last set-up the plan holds of a later step (a shelve before an unshelve),
    and the step it sets up: the run waited for the shelve to finish (a race plan waits until
    shelved), which a replay at the run's offsets would not (the unshelve answers 409); the
    reproducer shelves and waits first. Every step sent after the set-up stays: the one the
    unshelve raced may have gone out a moment before it (a double state change)."""
    for number in range(len(steps) - 1, 0, -1):
        needed = SET_UP_BY.get(steps[number]["action"])
        done = [index for index, step in enumerate(steps[:number]) if needed and step["action"] == needed]
        if done:
            return steps[done[-1] + 1:], steps[number]["action"]
    return steps, None


def _unlocked(steps: list[dict], anchor: float) -> list[dict]:
    """The steps without lock and unlock, unless the call it happened on is one: a lock changes no
    task state, it only turns the other steps into 409s (the run's raced it), and a server a
    replayed lock holds cannot be deleted without an unlock."""
    if any(step["action"] in ("lock", "unlock") and step["at"] == anchor for step in steps):
        return steps
    return [step for step in steps if step["action"] not in ("lock", "unlock")]


def _boot_raced(steps: list[dict]) -> list[dict]:
    """A boot is replayed only when the next server change is a DELETE (a delete during the build);
    else the reproducer boots its server and waits until it is ACTIVE before the steps."""
    kept = []
    for number, step in enumerate(steps):
        if step["action"] == "boot" and (kept or [s["action"] for s in steps[number + 1:number + 2]] != ["delete"]):
            continue
        kept.append(step)
    return kept


def script(plan: dict) -> str:
    """The reproducer's source: this module's TEMPLATE with the plan in it."""
    return TEMPLATE.replace("__PLAN__", json.dumps(plan, indent=1)).replace("__TITLE__", plan["title"]) \
        .replace("__SET_UP_BY__", json.dumps(SET_UP_BY))


TEMPLATE = r'''#!/usr/bin/env python3
"""Reproducer of: __TITLE__

Generated by novastress-locust from a stress run. It needs Python 3.9+ and keystoneauth1 (PyYAML
too, to read clouds.yaml). It boots a server (and makes a volume or floating IP when the requests
need one), replays the requests that led to the finding with their relative timing, and says how
often the symptom came back; it deletes what it made. --peer-cloud: the run's second credential
(an admin's lets it read Placement and reset a volume left attached).

    OS_CLOUD=mycloud python3 repro.py --times 20 --jitter 0.02
    python3 repro.py --os-cloud mycloud --peer-cloud mycloud-admin --image cirros --flavor m1.tiny

The cloud: --os-cloud / OS_CLOUD (clouds.yaml), else the OS_* variables (OS_AUTH_URL,
OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME).
"""
import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid

PLAN = json.loads(r"""__PLAN__""")
# a plan with a resize in it: the try also checks its migrations' allocations once the server is gone
RESIZED = any(step["action"] in ("resize", "confirmResize", "revertResize") for step in PLAN["steps"])
SPACINGS = (1.0, 0.5, 0.2, 0.0)
MIGRATION_LOOK = 2.0   # seconds a deleted server's migration may keep its allocation (Nova frees it with the delete)
GONE = ("DELETED", "SOFT_DELETED")


def body(action, boot, name):
    """The body of a server action as the run sent it, on this cloud's flavor and image."""
    return {"reboot": {"type": "SOFT"}, "resize": {"flavorRef": boot["resizeTo"]},
            "rebuild": {"imageRef": boot["imageRef"]}, "createImage": {"name": f"{name}-image"}}.get(action)


def fail(message):
    print(f"repro: {message}", file=sys.stderr)
    raise SystemExit(2)


def cloud_auth(name):
    """keystoneauth options of a clouds.yaml entry, or of the OS_* variables."""
    if name:
        try:
            import yaml
        except ImportError:
            fail("reading clouds.yaml needs PyYAML (pip install pyyaml), or use the OS_* variables")
        for path in (os.environ.get("OS_CLIENT_CONFIG_FILE"), "clouds.yaml",
                     os.path.expanduser("~/.config/openstack/clouds.yaml"), "/etc/openstack/clouds.yaml"):
            if path and os.path.exists(path):
                with open(path) as handle:
                    clouds = (yaml.safe_load(handle) or {}).get("clouds") or {}
                if name in clouds:
                    entry = clouds[name]
                    return dict(entry.get("auth") or {}), entry.get("region_name"), entry.get("interface", "public")
        fail(f"no cloud {name!r} in clouds.yaml")
    keys = ("auth_url", "username", "password", "project_name", "user_domain_name", "project_domain_name")
    auth = {"user_domain_name": "Default", "project_domain_name": "Default",   # each from OS_<KEY>
            **{key: os.environ[f"OS_{key.upper()}"] for key in keys if os.environ.get(f"OS_{key.upper()}")}}
    if "auth_url" not in auth:
        fail("no cloud: give --os-cloud, set OS_CLOUD, or the OS_* variables")
    return auth, os.environ.get("OS_REGION_NAME"), os.environ.get("OS_INTERFACE", "public")


class Client:
    """One credential: `call()` goes to a service's endpoint in the token's catalog."""

    HEADERS = {"compute": {"OpenStack-API-Version": "compute 2.53"},
               "placement": {"OpenStack-API-Version": "placement 1.28"}}

    def __init__(self, name, timeout):
        from keystoneauth1 import session
        from keystoneauth1.identity import v3
        auth, region, interface = cloud_auth(name)
        auth = {key: value for key, value in auth.items() if key in (
            "auth_url", "username", "password", "project_name", "project_id", "user_domain_name",
            "project_domain_name", "user_domain_id", "project_domain_id", "user_id")}
        self.session = session.Session(auth=v3.Password(**auth), timeout=timeout)
        self.filter = {"interface": interface, "region_name": region}

    def call(self, method, path, body=None, expect=None, headers=None, service="compute"):
        from keystoneauth1 import exceptions
        try:
            response = self.session.request(path, method, json=body, raise_exc=False,
                                            headers=self.HEADERS.get(service, {}) if headers is None else headers,
                                            endpoint_filter={**self.filter, "service_type": service})
        except exceptions.EndpointNotFound:
            fail(f"the cloud's catalog has no {service} endpoint, which this reproducer needs")
        if expect and response.status_code not in expect:
            raise RuntimeError(f"{method} {path} -> {response.status_code} {response.text[:200]}")
        return response


def lookup(compute, kind, wanted):
    path = {"flavor": "/flavors/detail", "image": "/images/detail"}[kind]
    # 2.1: the image proxy (/images) is gone from 2.36 on
    items = compute.call("GET", path, expect=(200,), headers={}).json()[kind + "s"]
    for item in items:
        if wanted in (item.get("id"), item.get("name")):
            return item["id"]
    if not wanted and items:
        return items[0]["id"]
    fail(f"no {kind} {wanted!r}: give --{kind}")


def network_arg(compute, wanted):
    if wanted in ("none", "auto", ""):
        return wanted or "none"
    from keystoneauth1 import exceptions
    try:
        listed = compute.session.get("/v2.0/networks", endpoint_filter={**compute.filter, "service_type": "network"})
    except exceptions.EndpointNotFound:
        return "none"
    for network in listed.json()["networks"]:
        if wanted in (network["id"], network["name"]):
            return [{"uuid": network["id"]}]
    fail(f"no network {wanted!r}: give --network")


def settle(compute, server_id, timeout):
    """The server once it is out of any task state (None once gone), or the last view at the timeout."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        response = compute.call("GET", f"/servers/{server_id}")
        seen = response.json()["server"] if response.status_code != 404 else None
        if seen is None or seen["status"] in GONE:
            return None
        if seen.get("OS-EXT-STS:task_state") is None and seen["status"] not in ("BUILD",):
            return seen
        time.sleep(0.2)
    return seen


def watch(read, busy, timeout):
    """read() until busy(seen) is false (or the timeout): the last view."""
    deadline = time.monotonic() + timeout
    seen = read()
    while seen is not None and busy(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = read()
    return seen


# -- what a try makes before its steps: a volume to attach, a floating IP to associate --------
def show(client, service, path, key):
    response = client.call("GET", path, service=service)
    return response.json()[key] if response.status_code == 200 else None


def make_volume(member, name, timeout):
    volume = member.call("POST", "/volumes", {"volume": {"name": name, "size": 1}}, expect=(202,),
                         service="block-storage").json()["volume"]
    seen = watch(lambda: show(member, "block-storage", f"/volumes/{volume['id']}", "volume"),
                 lambda seen: seen["status"] == "creating", timeout)
    if not seen or seen["status"] != "available":
        raise RuntimeError(f"volume {name} is {seen and seen['status']}, not available")
    return volume["id"]


def make_floating_ip(member, name):
    networks = member.call("GET", "/v2.0/networks?router:external=True", expect=(200,),
                           service="network").json()["networks"]
    if not networks:
        fail("the cloud has no external network to take a floating IP from")
    body = {"floatingip": {"floating_network_id": networks[0]["id"], "description": name}}
    return member.call("POST", "/v2.0/floatingips", body, expect=(201,), service="network").json()["floatingip"]["id"]


def port_of(member, server_id):
    ports = member.call("GET", f"/v2.0/ports?device_id={server_id}", expect=(200,), service="network").json()["ports"]
    return ports[0]["id"] if ports else None


# -- the steps: one small function per kind, each sends one request ---------------------------
def boot_step(client, made, boot):
    server = {key: value for key, value in boot.items() if key != "resizeTo"}
    response = client.call("POST", "/servers", {"server": {"name": made["name"], **server}})
    if response.status_code == 202:
        made["server"] = response.json()["server"]["id"]
    return response


def delete_step(client, made, boot):
    return client.call("DELETE", f"/servers/{made['server']}")


def attach_step(client, made, boot):
    # each attach of the run had a volume of its own: the next one not attached yet
    volume_id = made["to_attach"].pop(0)
    return client.call("POST", f"/servers/{made['server']}/os-volume_attachments",
                       {"volumeAttachment": {"volumeId": volume_id}})


def associate_step(client, made, boot):
    made["port"] = made.get("port") or port_of(client, made["server"])
    return client.call("PUT", f"/v2.0/floatingips/{made['floating_ip']}", {"floatingip": {"port_id": made["port"]}},
                       service="network")


def action_step(client, made, boot, action):
    response = client.call("POST", f"/servers/{made['server']}/action", {action: body(action, boot, made["name"])})
    if action == "resize" and response.status_code == 202:
        # its migration, read from this step's thread (a racing DELETE is not held up): Nova
        # hides a server's migrations once the server is gone
        note_migrations(made, 1.0)
    return response


def note_migrations(made, look):
    """Add the server's migrations to what the try checks once the server is gone (a resize
    makes its migration a moment after the 202: looked for up to `look` seconds)."""
    deadline = time.monotonic() + look
    while True:
        found = migrations_of(made["peer"], made["server"])
        made["migrations"] = list(dict.fromkeys(made.get("migrations", []) + found))
        if found or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


STEPS = {"boot": boot_step, "delete": delete_step, "attach": attach_step, "associate": associate_step}
# the state a replayed first action starts from, and the action that brings a fresh server there
BRING = json.loads(r"""__SET_UP_BY__""")


def bring(compute, server_id, boot, name, timeout):
    """Send the action a step needs done first (a shelve before an unshelve): the plan's set-up, else
    the first step's."""
    first = PLAN.get("bring") or PLAN["steps"][0]["action"]
    if first in BRING:
        compute.call("POST", f"/servers/{server_id}/action", {BRING[first]: body(BRING[first], boot, name)},
                     expect=(202,))
        settle(compute, server_id, timeout)


# -- the symptoms a try looks for once things settled -----------------------------------------
def volume_left(member, volume_id, gone, timeout):
    """The volume still attached to (or held for) the server once the server is gone."""
    seen = watch(lambda: show(member, "block-storage", f"/volumes/{volume_id}", "volume"),
                 lambda seen: seen["status"] in ("reserved", "attaching"), timeout)
    if gone and seen and (seen["status"] in ("in-use", "reserved", "attaching") or seen.get("attachments")):
        return f"volume {volume_id} stayed {seen['status']}, attached to the deleted server"
    return None


def floating_ip_left(member, made, timeout):
    """The floating IP still bound to a port that no longer exists."""
    seen = watch(lambda: show(member, "network", f"/v2.0/floatingips/{made['floating_ip']}", "floatingip"),
                 lambda seen: seen["status"] == "DOWN" and seen.get("port_id"), min(timeout, 5.0))
    port = seen and seen.get("port_id")
    if port and member.call("GET", f"/v2.0/ports/{port}", service="network").status_code == 404:
        return f"floating IP {seen['floating_ip_address']} ({seen['status']}) still bound to port {port}, which is gone"
    return None


def allocations_of(peer, consumer):
    """The consumer's Placement allocations ({} when none); False when this credential may not read them."""
    response = peer.call("GET", f"/allocations/{consumer}", service="placement")
    if response.status_code in (401, 403):
        return False
    return (response.json().get("allocations") or {}) if response.status_code == 200 else {}


def allocations_left(peer, server_id, look):
    """Placement allocations of the deleted server (a late claim may land a second or two after
    the 404); None when there are none, False when this credential may not read Placement."""
    held = watch(lambda: allocations_of(peer, server_id), lambda held: held == {}, look)
    if not held:
        return None if held == {} else False
    return f"Placement still holds allocations of the deleted server on {len(held)} provider(s)"


def migrations_of(peer, server_id):
    """The uuids of the server's migrations (compute 2.59), each a Placement consumer while its
    resize lasts: the source host's allocation; [] where this credential may not list them."""
    response = peer.call("GET", f"/os-migrations?instance_uuid={server_id}",
                         headers={"OpenStack-API-Version": "compute 2.59"})
    return [m["uuid"] for m in response.json().get("migrations", []) if m.get("uuid")] \
        if response.status_code == 200 else []


def migration_left(peer, migration, look):
    """The allocation of the deleted server's migration, still held `look` seconds after the server
    was gone (Nova frees it with the delete); the reproducer deletes it, so tries do not eat the
    cloud's capacity. None when freed, False when this credential may not read Placement."""
    held = watch(lambda: allocations_of(peer, migration), bool, look)
    if not held:
        return None if held == {} else False
    freed = peer.call("DELETE", f"/allocations/{migration}", service="placement").status_code == 204
    return (f"Placement still holds the allocation of its resize's migration {migration} on {len(held)} "
            f"provider(s) {look:g} s after the server was gone{' (the reproducer deleted it)' if freed else ''}")


def log_sizes(patterns):
    """Each --log-file's size now: a try reads only what was written after."""
    import glob
    return {path: os.path.getsize(path) for pattern in patterns for path in glob.glob(pattern) if os.path.isfile(path)}


def logged(patterns, sizes, request_ids):
    """ERROR lines written since `sizes` that name one of the try's requests (and the finding's
    exception, when it names one): what a log-only finding leaves."""
    wanted = [request_id for request_id in request_ids if request_id]
    found = []
    for path, size in log_sizes(patterns).items():
        with open(path, "rb") as handle:
            handle.seek(sizes.get(path, 0) if sizes.get(path, 0) <= size else 0)
            text = handle.read(8 << 20).decode("utf-8", "replace")
        named = [line for line in text.splitlines() if " ERROR " in line and any(i in line for i in wanted)]
        cause = PLAN.get("cause")
        if named and (cause is None or any(cause in line for line in named)):
            request_id = next(i for i in wanted if any(i in line for line in named))
            found.append(f"{os.path.basename(path)} logged ERROR {cause or ''} ({request_id})".replace("  ", " "))
    return found


def symptoms_of(clients, made, answers, after, timeout):
    """What came back once the try settled (`after`: the server, None once gone): a 5xx, the server in
    ERROR or stuck, a volume or floating IP left on the gone server, its allocations left; and what
    could not be looked at."""
    member = clients["member"]
    symptoms = [f"{action} answered {status}{' ' + said if said else ''} ({request_id})"
                for action, status, request_id, said in answers if status >= 500
                and (PLAN["status"] is None or status == PLAN["status"]) and said == (PLAN.get("cause") or said)]
    deleted = any(action == "delete" and status == 204 for action, status, _, _ in answers)
    if after is not None and after["status"] == "ERROR":
        symptoms.append("the server went to ERROR" + (" instead of being deleted" if deleted else ""))
    elif after is not None and after.get("OS-EXT-STS:task_state"):
        symptoms.append(f"the server stuck in task state {after['OS-EXT-STS:task_state']}")
    unchecked = ""
    symptoms += [volume_left(member, volume_id, after is None, timeout) for volume_id in made["volumes"]]
    if made["floating_ip"]:
        symptoms.append(floating_ip_left(member, made, timeout))
    if after is None and made["server"]:
        unshelved = any(step["action"] == "unshelve" for step in PLAN["steps"])
        lefts = [allocations_left(clients["peer"], made["server"], 2.0 if unshelved else 0.0)] + [
            migration_left(clients["peer"], migration, MIGRATION_LOOK) for migration in made.get("migrations", [])]
        if False in lefts:
            unchecked = "; allocations not read (Placement needs an admin --peer-cloud)"
        symptoms.extend(left or None for left in lefts)
    if made.get("log_sizes") is not None:
        ids = [answer[2] for answer in answers]   # the cloud may write the record a moment later
        symptoms.extend(watch(lambda: logged(made["log_files"], made["log_sizes"], ids), lambda found: not found, 2.0))
    return [symptom for symptom in symptoms if symptom], unchecked


def in_threads(target, calls, timeout):
    """target(*arguments) for each of `calls` at once, one thread each; back once they ended (or timed out)."""
    threads = [threading.Thread(target=target, args=arguments) for arguments in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


def boot_named(member, boot, name, made, answers, hints=None):
    """POST one server of the try's boot arguments: its id into `made` once accepted, its answer into `answers`."""
    body = {"server": {"name": name, **{key: value for key, value in boot.items() if key != "resizeTo"}}}
    if hints:
        body["os:scheduler_hints"] = hints
    response = member.call("POST", "/servers", body)
    answers.append(("boot", response.status_code, response.headers.get("x-openstack-request-id")))
    if response.status_code == 202:
        made.append(response.json()["server"]["id"])


def burst_try(number, args, clients, boot, prefix, spacing):
    """A server-group burst: a group of the plan's policy, its boots at their offsets, then whether
    the members that became ACTIVE obey the policy (hostId: the same host, in one project)."""
    member = clients["member"]
    name = f"{prefix}-{number}"
    group = member.call("POST", "/os-server-groups", {"server_group": {"name": name, "policies": [PLAN["group"]]}},
                        expect=(200,)).json()["server_group"]["id"]
    made, answers = [], []
    started = time.monotonic()

    def fire(index, step):
        delay = step["at"] * spacing + random.uniform(-args.jitter, args.jitter)
        time.sleep(max(0.0, started + delay - time.monotonic()))
        boot_named(member, boot, f"{name}-{index}", made, answers, {"group": group})
    try:
        in_threads(fire, enumerate(PLAN["steps"]), args.timeout)
        members = [settle(member, server_id, args.timeout) for server_id in list(made)]
        hosts = [seen.get("hostId") for seen in members if seen and seen["status"] == "ACTIVE"]
        ids = ", ".join(f"{action} {status} {request_id}" for action, status, request_id in answers)
        if PLAN.get("judged") == "host-count":
            up = hosts_up(clients["peer"])
            if up is None:
                return None, f"the compute hosts could not be counted (an admin --peer-cloud can); try not counted ({ids})"
            wanted = len(answers) if PLAN["group"] == "affinity" else min(len(answers), up)
            if len(hosts) != wanted:
                return True, (f"{len(hosts)} of {len(answers)} {PLAN['group']} boots ACTIVE on {up} hosts, "
                              f"expected {wanted} (requests: {ids})")
            return False, f"no symptom: {len(hosts)} of {len(answers)} boots ACTIVE on {up} hosts (requests: {ids})"
        if PLAN["group"] == "anti-affinity" and len(set(hosts)) < len(hosts):
            return True, (f"anti-affinity group: {len(hosts) - len(set(hosts))} of {len(hosts)} ACTIVE members "
                          f"share a host (requests: {ids})")
        if PLAN["group"] == "affinity" and len(set(hosts)) > 1:
            return True, f"affinity group: its {len(hosts)} ACTIVE members spread over {len(set(hosts))} hosts (requests: {ids})"
        return False, f"no symptom: {len(hosts)} of {len(answers)} boots ACTIVE, policy kept (requests: {ids})"
    finally:
        for server_id in list(made):
            delete(member, server_id, args.timeout)
        member.call("DELETE", f"/os-server-groups/{group}")


def hosts_up(peer):
    """Compute hosts up and enabled (os-services, an admin's); None when this credential may not list them."""
    response = peer.call("GET", "/os-services?binary=nova-compute")
    if response.status_code != 200:
        return None
    return sum(1 for service in response.json()["services"] if service["state"] == "up" and service["status"] == "enabled")


def usage_and_servers(member):
    """(instances the project's quota usage counts, servers the project has)."""
    project = member.session.get_project_id()
    in_use = member.call("GET", f"/os-quota-sets/{project}/detail", expect=(200,)).json()["quota_set"]["instances"]
    listed = member.call("GET", "/servers?limit=1000", expect=(200,)).json()["servers"]
    return in_use["in_use"], len(listed)


def churn_try(number, args, clients, boot, prefix, spacing):
    """A DELETE still pending when a boot lands in the same project (both move the project's usage
    counter), then both servers gone: does the usage still count the project's servers?"""
    member = clients["member"]
    made, answers = [], []

    def boot_one(suffix):
        boot_named(member, boot, f"{prefix}-{number}-{suffix}", made, answers)
    try:
        boot_one("a")
        seen = settle(member, made[0], args.timeout) if made else None
        if not seen or seen["status"] != "ACTIVE":
            return None, f"the server did not become ACTIVE ({seen and seen['status']}); try not counted"
        before = usage_and_servers(member)
        response = member.call("DELETE", f"/servers/{made[0]}")
        answers.append(("delete", response.status_code, response.headers.get("x-openstack-request-id")))
        boot_one("b")
        for server_id in made:
            delete(member, server_id, args.timeout)
        after = usage_and_servers(member)
        ids = ", ".join(f"{action} {status} {request_id}" for action, status, request_id in answers)
        if after[0] - after[1] != before[0] - before[1]:
            return True, (f"quota usage counts {after[0]} instances, the project has {after[1]} servers (it "
                          f"counted {before[0]} for {before[1]} before the try) (requests: {ids})")
        return False, f"no symptom: usage counts {after[0]} instances for {after[1]} servers (requests: {ids})"
    finally:
        for server_id in made:
            delete(member, server_id, args.timeout)


def quota_try(number, args, clients, boot, prefix, spacing, boots=3):
    """The project's instance quota set to its usage + 1 (the peer must be an admin), `boots` boots
    at once: more servers than that left usable once they settle (the conductor's re-check puts
    the excess in ERROR) is the symptom. The quota is set back and the servers deleted after."""
    member, peer = clients["member"], clients["peer"]
    project = member.session.get_project_id()
    original = peer.call("GET", f"/os-quota-sets/{project}", expect=(200,)).json()["quota_set"]["instances"]
    limit = usage_and_servers(member)[0] + 1
    if peer.call("PUT", f"/os-quota-sets/{project}", {"quota_set": {"instances": limit}}).status_code != 200:
        return None, "the quota could not be set (an admin --peer-cloud can); try not counted"
    made, answers = [], []
    try:
        in_threads(boot_named, [(member, boot, f"{prefix}-{number}-{index}", made, answers) for index in range(boots)],
                   args.timeout)
        settled = [settle(member, server_id, args.timeout) for server_id in list(made)]
        usable = [seen for seen in settled if seen and seen["status"] != "ERROR"]
        ids = ", ".join(f"{action} {status} {request_id}" for action, status, request_id in answers)
        if len(usable) > 1:
            return True, (f"instance quota {limit}: {len(made)} of {boots} concurrent boots accepted, {len(usable)} "
                          f"servers usable after settling (requests: {ids})")
        return False, f"no symptom: {len(made)} of {boots} boots accepted, {len(usable)} usable (requests: {ids})"
    finally:
        for server_id in made:
            delete(member, server_id, args.timeout)
        peer.call("PUT", f"/os-quota-sets/{project}", {"quota_set": {"instances": original}})


def one_try(number, args, clients, boot, prefix, spacing):
    whole = burst_try if PLAN.get("group") else {"churn": churn_try, "quota": quota_try}.get(PLAN["steps"][0]["action"])
    if whole is not None:
        return whole(number, args, clients, boot, prefix, spacing)
    member = clients["member"]
    made = {"name": f"{prefix}-{number}", "server": None, "volumes": [], "floating_ip": None, "peer": clients["peer"]}
    actions = [step["action"] for step in PLAN["steps"]]
    booted = threading.Event()
    try:
        for _attach in range(actions.count("attach")):
            made["volumes"].append(make_volume(member, made["name"], args.timeout))
        made["to_attach"] = list(made["volumes"])
        if "associate" in actions:
            made["floating_ip"] = make_floating_ip(member, made["name"])
        if actions[0] != "boot":
            boot_step(member, made, boot)
            seen = settle(member, made["server"], args.timeout) if made["server"] else None
            if not seen or seen["status"] != "ACTIVE":
                return None, f"the server did not become ACTIVE ({seen and seen['status']}); try not counted"
            bring(member, made["server"], boot, made["name"], args.timeout)
            if RESIZED:   # a resize brought first (a confirm's plan) has its migration already
                note_migrations(made, 0.0)
            if "associate" in actions:
                made["port"] = port_of(member, made["server"])
                if made["port"] is None:
                    return None, "the server has no port to associate a floating IP with (--network); try not counted"
            booted.set()
        answers = []
        if args.log_file:
            made["log_files"], made["log_sizes"] = args.log_file, log_sizes(args.log_file)
        started = time.monotonic()

        def fire(step):
            delay = step["at"] * spacing + random.uniform(-args.jitter, args.jitter)
            time.sleep(max(0.0, started + delay - time.monotonic()))
            if step["action"] != "boot" and not booted.wait(args.timeout):
                return
            send = STEPS.get(step["action"])
            client = clients[step["client"]]
            response = send(client, made, boot) if send else action_step(client, made, boot, step["action"])
            if step["action"] == "boot":
                booted.set()
            cause = PLAN.get("cause")
            said = cause if cause and response.status_code >= 500 and cause in response.text else ""
            answers.append((step["action"], response.status_code, response.headers.get("x-openstack-request-id"), said))
        in_threads(fire, [(step,) for step in PLAN["steps"]], args.timeout)
        after = settle(member, made["server"], args.timeout) if made["server"] else None
        symptoms, unchecked = symptoms_of(clients, made, answers, after, args.timeout)
        ids = ", ".join(f"{action} {status} {request_id}" for action, status, request_id, _ in answers)
        if symptoms:
            return True, "; ".join(symptoms) + f" (requests: {ids})"
        return False, f"no symptom{unchecked} (requests: {ids})"
    finally:
        if made["server"]:
            delete(member, made["server"], args.timeout)
        for volume_id in made["volumes"]:
            delete_volume(clients, volume_id, args.timeout)
        if made["floating_ip"]:
            member.call("DELETE", f"/v2.0/floatingips/{made['floating_ip']}", service="network")


def delete(compute, server_id, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = compute.call("GET", f"/servers/{server_id}")
        if response.status_code == 404 or response.json()["server"]["status"] in GONE:
            return
        if response.json()["server"].get("OS-EXT-STS:task_state") != "deleting":
            refused = compute.call("DELETE", f"/servers/{server_id}")
            if refused.status_code == 409 and "locked" in refused.text:
                # a replayed lock holds it: the reproducer's own server, unlocked to be deleted
                compute.call("POST", f"/servers/{server_id}/action", {"unlock": None})
        time.sleep(0.5)
    print(f"repro: server {server_id} still there after {timeout:g} s: delete it by hand", file=sys.stderr)


def delete_volume(clients, volume_id, timeout):
    """Delete the volume; one left attached to a gone server is reset first (an admin --peer-cloud
    may), else the reproducer says it gave up on it."""
    member, path = clients["member"], f"/volumes/{volume_id}"
    seen = watch(lambda: show(member, "block-storage", path, "volume"),
                 lambda seen: seen["status"] in ("reserved", "attaching", "detaching"), timeout)
    if seen is None:
        return
    if seen["status"] not in ("available", "error", "deleting"):
        reset = clients["peer"].call("POST", f"{path}/action", service="block-storage", body={
            "os-reset_status": {"status": "available", "attach_status": "detached"}})
        if reset.status_code != 202:
            print(f"repro: gave up on volume {volume_id}: it stayed {seen['status']} and the reset answered "
                  f"{reset.status_code} (an admin must reset it: --peer-cloud with an admin)", file=sys.stderr)
            return
    if member.call("DELETE", path, service="block-storage").status_code not in (202, 204, 404):
        print(f"repro: gave up on volume {volume_id}: it could not be deleted", file=sys.stderr)
    elif watch(lambda: show(member, "block-storage", path, "volume"), lambda seen: True, timeout) is not None:
        print(f"repro: volume {volume_id} still there after {timeout:g} s: delete it by hand", file=sys.stderr)


def sweep(clients, prefix, timeout):
    """Everything this reproducer made (its prefix), e.g. after Ctrl-C: servers, then snapshots,
    server groups, volumes and floating IPs."""
    compute = clients["member"]
    actions = [step["action"] for step in PLAN["steps"]]

    def named(path, key, service="compute", field="name"):
        listed = compute.call("GET", path, service=service, expect=(200,)).json()[key]
        return [item["id"] for item in listed if str(item.get(field) or "").startswith(prefix + "-")]
    for server_id in named("/servers/detail", "servers"):
        delete(compute, server_id, timeout)
    images = compute.call("GET", "/images/detail", headers={})
    for image in images.json().get("images", []) if images.status_code == 200 else []:
        if str(image.get("name", "")).startswith(prefix + "-"):
            compute.call("DELETE", f"/images/{image['id']}", headers={})
    for volume_id in named("/volumes", "volumes", "block-storage") if "attach" in actions else []:
        delete_volume(clients, volume_id, timeout)
    for group_id in named("/os-server-groups", "server_groups") if PLAN.get("group") else []:
        compute.call("DELETE", f"/os-server-groups/{group_id}")
    for fip_id in named("/v2.0/floatingips", "floatingips", "network", "description") if "associate" in actions else []:
        compute.call("DELETE", f"/v2.0/floatingips/{fip_id}", service="network")


def interrupted(*_args):
    raise KeyboardInterrupt


def main():
    # Ctrl-C and SIGTERM end the tries and delete what was made, even where SIGINT came in ignored
    # (a process started in the background)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    parser = argparse.ArgumentParser(description=f"Reproducer of: {PLAN['title']}")
    parser.add_argument("--os-cloud", default=os.environ.get("OS_CLOUD"))
    parser.add_argument("--peer-cloud", help="the second credential's cloud (default: the same as --os-cloud)")
    parser.add_argument("--times", type=int, default=20)
    parser.add_argument("--jitter", type=float, default=0.0, help="seconds each step may move, at random")
    parser.add_argument("--spacing", default="auto",
                        help="how far apart the steps go, times the run's spacing: a number (1: as the run sent "
                             "them, 0: all at once) or auto (as the run did; after 3 tries in a row without the "
                             "symptom, x0.5, then x0.2, then all at once: the run's load stretched how long the "
                             "cloud took, so the requests may have met on the cloud closer than they were sent)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a server may take to settle")
    parser.add_argument("--log-file", action="append", default=[], metavar="GLOB",
                        help="a log file (glob) of the cloud's, readable here (repeatable): an ERROR it gets during a "
                             "try, naming one of the try's requests (and the finding's exception), is the symptom "
                             "of a logged-error finding")
    for name in ("image", "flavor", "network"):
        parser.add_argument(f"--{name}", default=PLAN[name])
    args = parser.parse_args()
    try:
        spacings = list(SPACINGS) if args.spacing == "auto" else [float(args.spacing)]
    except ValueError:
        spacings = [-1.0]
    if args.times < 1 or args.jitter < 0 or args.timeout <= 0 or spacings[0] < 0:
        fail("--times must be 1 or more, --jitter 0 or more, --timeout above 0, --spacing auto or 0 or more")
    member = Client(args.os_cloud, 30)
    clients = {"member": member, "peer": Client(args.peer_cloud, 30) if args.peer_cloud else member}
    boot = {"imageRef": lookup(member, "image", args.image), "flavorRef": lookup(member, "flavor", args.flavor),
            "networks": network_arg(member, args.network)}
    flavors = member.call("GET", "/flavors", expect=(200,)).json()["flavors"]
    boot["resizeTo"] = next((f["id"] for f in flavors if f["id"] != boot["flavorRef"]), boot["flavorRef"])
    prefix = f"nsrepro-{uuid.uuid4().hex[:6]}"
    print(f"repro: {PLAN['title']}: {args.times} tries of {len(PLAN['steps'])} step(s) on servers {prefix}-*")
    came_back = counted = missed = 0
    by_spacing = {}
    try:
        for number in range(1, args.times + 1):
            spacing = spacings[0]
            symptom, text = one_try(number, args, clients, boot, prefix, spacing)
            if symptom is not None:
                counted += 1
                came_back += bool(symptom)
                seen = by_spacing.setdefault(spacing, [0, 0])
                seen[0] += bool(symptom)
                seen[1] += 1
                missed = 0 if symptom else missed + 1
            print(f"try {number}: {'SYMPTOM ' if symptom else ''}{text}", flush=True)
            if missed >= 3 and len(spacings) > 1:
                spacings.pop(0)
                missed = 0
                print(f"repro: no symptom in 3 tries in a row: the next tries send the steps x{spacings[0]:g} as far "
                      f"apart as the run did", flush=True)
    except KeyboardInterrupt:
        print("repro: interrupted; deleting what it made", file=sys.stderr)
    finally:
        sweep(clients, prefix, args.timeout)
    kind = "" if PLAN["kind"] != "log" or args.log_file else \
        " (a logged error: look for the request ids above in the logs, or give --log-file)"
    print(f"symptom came back in {came_back} of {counted} tries{kind}")
    if len(by_spacing) > 1 or args.spacing != "auto":
        print("by spacing: " + ", ".join(f"x{spacing:g} {seen[0]} of {seen[1]}" for spacing, seen in by_spacing.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
