"""Each credential source, their precedence, and the one-line errors before any user spawns."""
from __future__ import annotations

import argparse
import socket

import pytest

from locust_runs import FAST, clean_env, cli_credentials, run_locust, servers_named
from novastress_locust import credentials, options


def _options(**values) -> argparse.Namespace:
    parsed = argparse.Namespace(**{opt.dest: opt.default for opt in options.ALL.values()})
    for key, value in values.items():
        setattr(parsed, key, value)
    return parsed


def _tempest_conf(path, cloud, password=None, stress: str = "") -> str:
    creds = cloud.credentials(admin=True)
    path.write_text(f"""[auth]
admin_username = {creds['username']}
admin_password = {password or creds['password']}
admin_project_name = {creds['project_name']}
admin_domain_name = Default

[identity]
uri_v3 = {creds['auth_url']}/v3
region = RegionOne

[compute]
image_ref = cirros-0.6.2-x86_64-disk

[stress]
{stress}
""")
    return str(path)


def _no_spawn(run) -> None:
    assert "Ramping to" not in run.output and "All users spawned" not in run.output
    assert "Traceback" not in run.output


# -- resolution, in process --------------------------------------------------
def test_nothing_configured_resolves_to_none(tmp_path):
    assert credentials.resolve(_options(), environ={"HOME": str(tmp_path)}) is None


def test_precedence_options_over_clouds_yaml_over_environment_over_tempest(tmp_path, cloud):
    clouds = cloud.clouds_yaml(tmp_path / "clouds.yaml")
    tempest = _tempest_conf(tmp_path / "tempest.conf", cloud, stress="max_runs = 7")
    environ = {"HOME": str(tmp_path), "OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": "embedded",
               "OS_REGION_NAME": "EnvRegion", "OS_INTERFACE": "internal", "OS_USERNAME": "from-env"}
    target = credentials.resolve(_options(tempest_conf=tempest, os_username="from-cli"), environ=environ)
    assert target.auth["username"] == "from-cli"                          # options win
    assert target.auth["password"] == cloud.credentials()["password"]     # clouds.yaml over tempest.conf
    assert target.region_name == "RegionOne"                              # clouds.yaml over OS_*
    assert target.interface == "public"
    assert target.auth["auth_url"] == cloud.auth_url                      # clouds.yaml over tempest
    parsed = _options(tempest_conf=tempest)
    credentials.apply_tempest_stress(parsed, credentials.resolve(parsed, environ={"HOME": str(tmp_path)}))
    assert parsed.max_runs == 7 and parsed.image == "cirros-0.6.2-x86_64-disk"
    assert "password" not in target.who and cloud.credentials()["password"] not in repr(target.who)


def test_application_credential_and_unknown_auth_option(tmp_path):
    environ = {"HOME": str(tmp_path), "OS_AUTH_URL": "http://127.0.0.1:9/identity/v3",
               "OS_APPLICATION_CREDENTIAL_ID": "abc", "OS_APPLICATION_CREDENTIAL_SECRET": "s3cret"}
    target = credentials.resolve(_options(), environ=environ)
    assert target.auth_type == "v3applicationcredential"
    assert target.plugin() is not None
    bad = credentials.resolve(_options(os_auth_option=["colour=blue"]), environ=environ)
    with pytest.raises(credentials.CredentialsError, match="has no option colour"):
        bad.plugin()


def test_unknown_cloud_name_is_one_clear_line(tmp_path, cloud):
    clouds = cloud.clouds_yaml(tmp_path / "clouds.yaml")
    with pytest.raises(credentials.CredentialsError, match="'nope' is not in .*its clouds: embedded"):
        credentials.resolve(_options(os_cloud="nope"), environ={"OS_CLIENT_CONFIG_FILE": str(clouds),
                                                               "HOME": str(tmp_path)})


# -- real runs -------------------------------------------------------------------
def test_clouds_yaml_via_os_cloud(tmp_path, cloud):
    clouds = cloud.clouds_yaml(tmp_path / "clouds.yaml")
    env = clean_env(OS_CLOUD="embedded", OS_CLIENT_CONFIG_FILE=str(clouds), HOME=str(tmp_path))
    run = run_locust(["-t", "20s", "-u", "2", "--max-runs", "1", *FAST], env=env)
    assert run.returncode == 0, run.output[-3000:]
    assert "from clouds.yaml cloud 'embedded'" in run.output
    assert run.summary()["runs"] == 2
    assert "started the embedded cloud" not in run.output
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_os_environment_variables(tmp_path, cloud):
    creds = cloud.credentials()
    env = clean_env(OS_AUTH_URL=creds["auth_url"], OS_USERNAME=creds["username"],
                    OS_PASSWORD=creds["password"], OS_PROJECT_NAME=creds["project_name"],
                    OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default", HOME=str(tmp_path))
    run = run_locust(["-t", "20s", "-u", "2", "--max-runs", "1", *FAST, "--prefix", "envtest"], env=env)
    assert run.returncode == 0, run.output[-3000:]
    assert "from OS_* environment" in run.output
    assert run.summary()["runs"] == 2
    assert servers_named(cloud, f"envtest-{run.run_id}-") == []


def test_tempest_conf_with_stress_section(tmp_path, cloud):
    conf = _tempest_conf(tmp_path / "tempest.conf", cloud,
                         stress="default_thread_number_per_action = 3\nmax_runs = 1\nleave_dirty_stack = false")
    run = run_locust(["-t", "20s", "--tempest-conf", conf, *FAST], env=clean_env(HOME=str(tmp_path)))
    assert run.returncode == 0, run.output[-3000:]
    assert "admin/admin" in run.output and "from tempest.conf" in run.output
    summary = run.summary()
    assert sorted(summary["users"]) == [f"ServerCreateDestroy-{n}" for n in (1, 2, 3)]
    assert summary["runs"] == 3
    assert servers_named(cloud, f"ns-{run.run_id}-") == []


def test_command_line_wins_over_a_wrong_environment(tmp_path, cloud):
    env = clean_env(OS_PASSWORD="wrong", OS_USERNAME="nobody", HOME=str(tmp_path))
    run = run_locust(["-t", "20s", "-u", "1", "--max-runs", "1", *FAST, *cli_credentials(cloud)], env=env)
    assert run.returncode == 0, run.output[-3000:]


def test_bad_password_is_one_line_and_no_user_spawns(tmp_path, cloud):
    args = [arg for arg in cli_credentials(cloud) if not arg.startswith("--os-password=")]
    args.append("--os-password=not-the-password")
    run = run_locust(["-t", "20s", *args], env=clean_env(HOME=str(tmp_path)))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("novastress: ")]
    assert len(errors) == 1 and "authentication failed for demo/demo" in errors[0]
    assert "not-the-password" not in run.output
    _no_spawn(run)


def test_unreachable_auth_url_is_one_line(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = run_locust(["-t", "20s", "--os-auth-url", f"http://127.0.0.1:{port}/identity",
                      "--os-username", "demo", "--os-password", "x", "--os-project-name", "demo"],
                     env=clean_env(HOME=str(tmp_path)))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("novastress: ")]
    assert len(errors) == 1 and "cannot reach the auth URL" in errors[0], run.output[-2000:]
    _no_spawn(run)


@pytest.mark.parametrize("option, value, expected", [
    ("--image", "no-such-image", "--image 'no-such-image' matches no image; available: cirros"),
    ("--flavor", "m9.huge", "--flavor 'm9.huge' matches no flavor; available: "),
    ("--network", "no-such-net", "--network 'no-such-net' matches no network"),
])
def test_unknown_boot_names_fail_before_load(tmp_path, cloud, option, value, expected):
    run = run_locust(["-t", "20s", option, value, *cli_credentials(cloud)], env=clean_env(HOME=str(tmp_path)))
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("novastress: ")]
    assert len(errors) == 1 and expected in errors[0], run.output[-2000:]
    _no_spawn(run)
