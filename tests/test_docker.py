"""docker/ without a Docker engine: the files parse, and every command names what exists."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def option_names(command: list[str]) -> set[str]:
    """Every --option a CLI's --help lists."""
    shown = subprocess.run(command + ["--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", shown.stdout))


# Locust's --help comes before the locustfile loads: build its parser the way `locust -f` does,
# with the locustfile's (and so our plugin's) options, in a subprocess (importing Locust patches gevent)
LOCUST_OPTIONS = """
import runpy, sys
from locust import argument_parser
runpy.run_path(sys.argv[1])
parser = argument_parser.get_parser()
print("\\n".join(flag for action in parser._actions for flag in action.option_strings))
"""


def locust_option_names(locustfile: str) -> set[str]:
    shown = subprocess.run([sys.executable, "-c", LOCUST_OPTIONS, locustfile], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    return set(shown.stdout.split())


def test_dockerfiles_copy_what_exists_and_run_known_programs():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("Dockerfile", "Dockerfile.loghost"):
        instructions = dockerfile_instructions(DOCKER / name)
        assert instructions[0][0] == "FROM"
        for keyword, arguments in instructions:
            assert keyword in {"FROM", "RUN", "WORKDIR", "COPY", "EXPOSE", "ENTRYPOINT", "CMD", "USER", "ENV"}
            if keyword == "COPY":
                *sources, _target = shlex.split(arguments)
                for source in sources:
                    assert (ROOT / source).exists(), f"{name}: COPY {source} (build context is the repo root)"
            if keyword in ("ENTRYPOINT", "CMD"):
                program = yaml.safe_load(arguments)[0]
                assert program in ("locust", "/bin/sh") or program in scripts, program
    entrypoint = yaml.safe_load(dict(dockerfile_instructions(DOCKER / "Dockerfile"))["ENTRYPOINT"])
    assert (ROOT / entrypoint[entrypoint.index("-f") + 1]).is_file()
    loghost_cmd = yaml.safe_load(dict(dockerfile_instructions(DOCKER / "Dockerfile.loghost"))["CMD"])
    script = loghost_cmd[-1].replace("/usr/local/bin/", "docker/")
    assert (ROOT / script).is_file()
    assert subprocess.run(["sh", "-n", str(ROOT / script)]).returncode == 0


def test_compose_services_use_existing_entry_points_options_and_files():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"cloud", "loghost", "master", "worker"} <= set(services)
    locust_options = locust_option_names("locustfiles/create_destroy.py")
    assert {"--master", "--worker", "--os-cloud", "--prefix"} <= locust_options
    fakecloud_options = option_names([str(BIN / "novastress-fakecloud")])
    image_entrypoint = yaml.safe_load(dict(dockerfile_instructions(DOCKER / "Dockerfile"))["ENTRYPOINT"])
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared_volumes, f"{name}: volume {volume}"
        for dependency in service.get("depends_on", []):
            assert dependency in services
        command = service.get("command")
        if command is None:
            continue
        if service.get("entrypoint") == ["novastress-fakecloud"]:
            known = fakecloud_options
        else:
            assert build["dockerfile"] == "docker/Dockerfile" and "entrypoint" not in service, name
            assert image_entrypoint[0] == "locust"
            known = locust_options
        flags = [word for word in command if word.startswith("--")]
        unknown = [flag for flag in flags if flag not in known]
        assert not unknown, f"{name}: unknown options {unknown}"
    # the master watches logs over SSH with the key the log host shares through a volume
    master = services["master"]["command"]
    assert master[master.index("--log-hosts") + 1] == "loghost"
    assert "--worker" in services["worker"]["command"] and "--master" in master
    # every service reads the same clouds.yaml the cloud writes
    cloud_yaml = services["cloud"]["command"][services["cloud"]["command"].index("--clouds-yaml") + 1]
    for name in ("master", "worker"):
        assert services[name]["environment"]["OS_CLIENT_CONFIG_FILE"] == cloud_yaml
