"""How often the embedded cloud and a real Nova agree under Tempest's compute API tests.

    .venv/bin/python bench/tempest_agreement.py [--real-clouds-yaml ~/.cache/novastress-realnova/clouds.yaml]
        [--regex REGEX] [--concurrency 2] [--keep]

The real cloud is the `realnova-admin` entry of `--real-clouds-yaml` (`novastress-realnova up`
starts one here). The embedded cloud is started in the real one's shape: the same services in its
catalog, as many flavors and compute hosts, an external network only if the real one has one,
snapshots that never finish (as with Nova's fake driver) and no planted race armed. Both
get one tempest.conf with the same feature flags (only the URLs, credentials, image and flavor
differ), and Tempest 47 (installed once into its own venv under `--workdir`) runs the same tests
against each. A test agrees when both clouds give it the same outcome (pass, fail or skip).

It prints every test that disagrees, grouped by the Tempest module, and ends with `ratio:` the
share of tests that agree (the goal is 0.95 or more).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure  # noqa: E402

TEMPEST = "tempest==47.0.0"
# the compute API tests the agreement is measured on: servers, flavors, keypairs, limits, images,
# admin services and quotas, versions
REGEX = (r"^tempest\.api\.compute\.(servers|flavors|keypairs|limits|images|admin\.test_services|"
         r"admin\.test_quotas|test_versions)\b")
# what a fake-driver Nova with one flavor and no migrations can do; the same for both clouds
FEATURES = {
    "resize": "False", "cold_migration": "False", "live_migration": "False", "interface_attach": "False",
    "console_output": "True", "rescue": "True", "change_password": "False", "snapshot": "True",
    "shelve": "True", "pause": "True", "suspend": "True", "personality": "False", "config_drive": "False",
    "vnc_console": "False", "spice_console": "False", "serial_console": "False",
    "attach_encrypted_volume": "False", "volume_multiattach": "False", "disk_config": "True",
    "block_migration_for_live_migration": "False", "metadata_service": "False",
}


def tempest_venv(workdir: Path) -> Path:
    """Tempest's own venv (its pins must not touch the project's): made once."""
    venv = workdir / "venv"
    if not (venv / "bin" / "tempest").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", TEMPEST], check=True)
    return venv


def cloud_entry(clouds_yaml: Path, name: str) -> dict:
    clouds = yaml.safe_load(clouds_yaml.read_text())["clouds"]
    if name not in clouds:
        raise SystemExit(f"tempest_agreement: no cloud {name!r} in {clouds_yaml}")
    return clouds[name]


def profile(entry: dict) -> dict:
    """What tempest.conf needs of a cloud: its services, image, flavor, hosts, external network."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    auth = {key: value for key, value in entry["auth"].items() if key in (
        "auth_url", "username", "password", "project_name", "user_domain_id", "project_domain_id",
        "user_domain_name", "project_domain_name")}
    admin = session.Session(auth=v3.Password(**auth))
    catalog = {service["type"] for service in admin.auth.get_access(admin).service_catalog.catalog}
    compute = {"service_type": "compute", "interface": "public"}
    flavors = admin.get("/flavors/detail", endpoint_filter=compute).json()["flavors"]
    images = admin.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"]
    hosts = admin.get("/os-services", endpoint_filter=compute, params={"binary": "nova-compute"}).json()["services"]
    external, tenant = [], []
    if "network" in catalog:
        def networks(external_flag: str) -> list[dict]:
            return admin.get("/v2.0/networks", endpoint_filter={"service_type": "network"},
                             params={"router:external": external_flag}).json()["networks"]
        external, tenant = networks("True"), networks("False")
    active = [image for image in images if image["status"] == "active"]
    flavors.sort(key=lambda flavor: (flavor["ram"], flavor["id"]))
    return {"auth": auth, "region": entry.get("region_name") or "RegionOne", "services": sorted(catalog),
            "flavors": [flavor["id"] for flavor in flavors], "image": active[0]["id"] if active else "",
            "hosts": len(hosts), "external": external[0]["id"] if external else "",
            "tenant_network": bool(tenant)}


def tempest_conf(cloud: dict, log_dir: Path) -> str:
    auth, services = cloud["auth"], set(cloud["services"])
    flavors = cloud["flavors"]
    sections = {
        "DEFAULT": {"log_dir": str(log_dir), "log_file": "tempest.log"},
        "auth": {"admin_username": auth["username"], "admin_password": auth["password"],
                 "admin_project_name": auth["project_name"], "admin_domain_name": "Default",
                 "use_dynamic_credentials": "True", "create_isolated_networks": "False"},
        "identity": {"uri_v3": re.sub(r"/(v3/?)?$", "", auth["auth_url"]) + "/v3", "auth_version": "v3", "region": cloud["region"],
                     "disable_ssl_certificate_validation": "True"},
        "identity-feature-enabled": {"api_v2": "False", "api_v3": "True"},
        "compute": {"image_ref": cloud["image"], "image_ref_alt": cloud["image"], "flavor_ref": flavors[0],
                    "flavor_ref_alt": flavors[1] if len(flavors) > 1 else flavors[0],
                    "min_compute_nodes": str(cloud["hosts"]), "max_microversion": "latest",
                    "build_timeout": "60", "region": cloud["region"]},
        "compute-feature-enabled": FEATURES,
        "network": {"public_network_id": cloud["external"], "floating_network_name": ""},
        "network-feature-enabled": {"floating_ips": "True" if cloud["external"] else "False"},
        "image": {"region": cloud["region"]},
        "validation": {"run_validation": "False"},
        "service_available": {"nova": "True", "glance": str("image" in services),
                              "neutron": str("network" in services),
                              "cinder": str("volumev3" in services or "block-storage" in services),
                              "swift": "False", "heat": "False"},
    }
    return "".join(f"[{name}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items()) + "\n"
                   for name, values in sections.items())


def run_tempest(venv: Path, workspace: Path, conf: str, regex: str, concurrency: int, timeout: float) -> dict:
    """test id -> outcome (success, fail, skip) of one Tempest run."""
    if not workspace.exists():
        subprocess.run([str(venv / "bin" / "tempest"), "init", str(workspace)], check=True,
                       capture_output=True, text=True)
    (workspace / "etc" / "tempest.conf").write_text(conf)
    log_dir = re.search(r"^log_dir = (.*)$", conf, re.M)
    Path(log_dir.group(1)).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("OS_CLIENT_CONFIG_FILE", None)
    started = time.monotonic()
    completed = subprocess.run([str(venv / "bin" / "tempest"), "run", "--regex", regex, "--concurrency",
                                str(concurrency)], cwd=workspace, env=env, capture_output=True, text=True,
                               timeout=timeout)
    print(f"  tempest run in {workspace}: exit {completed.returncode} after {time.monotonic() - started:.0f} s",
          flush=True)
    (workspace / "tempest-run.log").write_text(completed.stdout + completed.stderr)
    stream = subprocess.run([str(venv / "bin" / "stestr"), "last", "--subunit"], cwd=workspace, env=env,
                            capture_output=True, timeout=300).stdout
    table = subprocess.run([str(venv / "bin" / "subunit2csv")], input=stream, capture_output=True,
                           timeout=300).stdout.decode(errors="replace")
    outcomes = {}
    for row in csv.DictReader(io.StringIO(table)):
        test = re.sub(r"\[.*\]$", "", row["test"])
        if test.startswith("tempest.") and not test.endswith(("setUpClass", "tearDownClass")):
            outcomes[test] = row["status"]
        elif "setUpClass" in test or "tearDownClass" in test:
            outcomes[test] = row["status"]      # a class that could not set up: each of its tests fails
    return outcomes


def sweep(entry: dict) -> list[str]:
    """What Tempest left on a cloud (an interrupted run does not clean up): its servers, images,
    keypairs, users and projects, all named tempest-*; what was deleted."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    auth = {key: value for key, value in entry["auth"].items() if key in (
        "auth_url", "username", "password", "project_name", "user_domain_id", "project_domain_id",
        "user_domain_name", "project_domain_name")}
    admin = session.Session(auth=v3.Password(**auth))
    compute, identity = {"service_type": "compute"}, {"service_type": "identity"}
    gone = []
    servers = admin.get("/servers", endpoint_filter=compute, params={"all_tenants": "1"}).json()["servers"]
    for server in servers:
        if server["name"].startswith("tempest-"):
            admin.delete(f"/servers/{server['id']}", endpoint_filter=compute, raise_exc=False)
            gone.append(f"server {server['name']}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(
            s["name"].startswith("tempest-") for s in admin.get("/servers", endpoint_filter=compute, params={
                "all_tenants": "1"}).json()["servers"]):
        time.sleep(1)
    for image in admin.get("/v2/images", endpoint_filter={"service_type": "image"}).json()["images"]:
        if str(image.get("name") or "").startswith("tempest-"):
            admin.delete(f"/v2/images/{image['id']}", endpoint_filter={"service_type": "image"}, raise_exc=False)
            gone.append(f"image {image['name']}")
    # catalogs differ on whether /v3 is part of the identity URL
    keystone = re.sub(r"/v3/?$", "", admin.get_endpoint(interface="public", **identity)) + "/v3"
    for kind in ("users", "projects"):
        for item in admin.get(f"{keystone}/{kind}").json()[kind]:
            if item["name"].startswith("tempest-"):
                admin.delete(f"{keystone}/{kind}/{item['id']}", raise_exc=False)
                gone.append(f"{kind[:-1]} {item['name']}")
    return gone


def start_embedded(real: dict, workdir: Path, snapshots_never_finish: bool) -> tuple[subprocess.Popen, Path]:
    clouds = workdir / "embedded-clouds.yaml"
    clouds.unlink(missing_ok=True)
    volume = {"volume", "volumev3", "block-storage"}
    services = ",".join(name for name in ("compute", "image", "volume", "network", "placement")
                        if name in real["services"] or (name == "volume" and volume & set(real["services"])))
    command = [str(Path(sys.executable).parent / "novastress-fakecloud"), "--flavors", str(len(real["flavors"])),
               "--compute-hosts", str(max(1, real["hosts"])), "--clouds-yaml", str(clouds),
               "--log-dir", str(workdir / "embedded-logs"), "--services", services,
               # its planted races are our test bed, not Nova's behaviour: Tempest would meet them
               # (a delete during the build left in ERROR, a burst's NoValidHost)
               "--faults", "none"]
    if not real["external"]:
        command.append("--no-external-network")
    if not real.get("tenant_network", True):
        command.append("--no-tenant-network")
    if snapshots_never_finish:
        command.append("--snapshots-never-finish")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not clouds.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    if not clouds.exists():
        process.kill()
        raise SystemExit(f"tempest_agreement: the embedded cloud did not start: {process.stderr.read()[-500:]}")
    return process, clouds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-clouds-yaml", type=Path,
                        default=Path("~/.cache/novastress-realnova/clouds.yaml").expanduser())
    parser.add_argument("--real-cloud", default="realnova-admin")
    parser.add_argument("--regex", default=REGEX)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds each Tempest run may take")
    parser.add_argument("--workdir", type=Path, default=Path("~/.cache/novastress-tempest").expanduser())
    parser.add_argument("--snapshots-finish", action="store_true",
                        help="the real cloud's snapshots become active (not so with Nova's fake driver, which "
                             "novastress-realnova runs: by default the embedded cloud's never finish either)")
    parser.add_argument("--report", action="store_true", help="only compare the two sides' last saved outcomes")
    parser.add_argument("--sweep", action="store_true", help="only delete what Tempest left on the real cloud")
    parser.add_argument("--only", choices=("real", "embedded"), help="run one side; the other's last results")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        left = sweep(cloud_entry(args.real_clouds_yaml, args.real_cloud))
        print(f"deleted {len(left)}: {', '.join(left)}")
        return 0
    if args.report:
        saved = [args.workdir / f"{side}-outcomes.json" for side in ("real", "embedded")]
        if not all(path.exists() for path in saved):
            raise SystemExit("tempest_agreement: --report needs both sides' outcomes: run without it first")
        return report(*(json.loads(path.read_text()) for path in saved))
    venv = tempest_venv(args.workdir)
    real = profile(cloud_entry(args.real_clouds_yaml, args.real_cloud))
    print(f"real cloud: services {', '.join(real['services'])}; {len(real['flavors'])} flavor(s), "
          f"{real['hosts']} compute host(s), external network {'yes' if real['external'] else 'no'}")
    results = {}
    for side in ("real", "embedded"):
        saved = args.workdir / f"{side}-outcomes.json"
        if args.only and args.only != side and saved.exists():
            results[side] = json.loads(saved.read_text())
            continue
        process = None
        try:
            if side == "real":
                cloud = real
            else:
                process, clouds = start_embedded(real, args.workdir, not args.snapshots_finish)
                cloud = profile(cloud_entry(clouds, "embedded-admin"))
            results[side] = run_tempest(venv, args.workdir / f"{side}-workspace",
                                        tempest_conf(cloud, args.workdir / f"{side}-logs"), args.regex,
                                        args.concurrency, args.timeout)
            left = sweep(cloud_entry(args.real_clouds_yaml, args.real_cloud)) if side == "real" else []
            if left:
                print(f"  deleted what Tempest left on the real cloud: {len(left)} ({', '.join(left[:5])} ...)")
        finally:
            if process is not None:
                process.terminate()
                process.wait(30)
        saved.write_text(json.dumps(results[side], indent=1, sort_keys=True))
    return report(results["real"], results["embedded"])


def report(real: dict, embedded: dict) -> int:
    tests = sorted(set(real) | set(embedded))
    differ = [test for test in tests if real.get(test) != embedded.get(test)]
    by_module = defaultdict(list)
    for test in differ:
        by_module[test.rsplit(".", 2)[0]].append(test)
    for module, names in sorted(by_module.items()):
        print(f"{module}: {len(names)} differ")
        for test in names:
            print(f"  {test.rsplit('.', 2)[-2]}.{test.rsplit('.', 1)[-1]}: real {real.get(test, 'not run')}, "
                  f"embedded {embedded.get(test, 'not run')}")
    print(f"outcomes, real: {dict(Counter(real.values()))}; embedded: {dict(Counter(embedded.values()))}")
    agree = (len(tests) - len(differ)) / len(tests) if tests else 0.0
    figure("Tempest compute API tests, embedded agrees with real Nova", ">= 95 %",
           f"{len(tests) - len(differ)} of {len(tests)} ({agree:.1%})", agree, agree >= 0.95)
    print(f"ratio: {agree:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
