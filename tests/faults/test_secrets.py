"""No password or token in any artefact of a run: output, CSV, HTML report, the cloud's logs."""
from __future__ import annotations

import subprocess
from pathlib import Path

from fault_helpers import LOCUST, QUIET_CLOUD, ROOT, chaos, clean_env, control, leftovers


def _artefacts(tmp_path: Path, cloud, completed: subprocess.CompletedProcess) -> dict[str, str]:
    texts = {"stdout": completed.stdout, "stderr": completed.stderr}
    for path in list(tmp_path.glob("report*")) + list(Path(cloud.log_dir).glob("*")):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    return texts


def _run(tmp_path: Path, cloud, auth: list[str], run_id: str) -> subprocess.CompletedProcess:
    # a failing call puts an error path into the artefacts too
    chaos(cloud, service="compute", method="POST", path="/servers$", kind="status", status=500, count=1)
    return subprocess.run([LOCUST, "-f", "locustfiles/create_destroy.py", "--headless", "-u", "2",
                           "--max-runs", "3", "-t", "40s", "--status-poll-interval", "0.2", "--run-id", run_id,
                           "--csv", str(tmp_path / "report"), "--html", str(tmp_path / "report.html"),
                           "--loglevel", "DEBUG", *auth], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=90)


def test_password_never_appears_in_any_artefact(cloud_factory, tmp_path):
    cloud = cloud_factory(**QUIET_CLOUD)
    creds = cloud.credentials()
    control(cloud, "POST", "/expire-tokens")   # an earlier token rejected: the re-auth path runs
    completed = _run(tmp_path, cloud, [f"--os-auth-url={creds['auth_url']}", f"--os-username={creds['username']}",
                                       f"--os-password={creds['password']}",
                                       f"--os-project-name={creds['project_name']}"], "pwsecret")
    assert "Summary:" in completed.stdout, completed.stderr[-3000:]
    texts = _artefacts(tmp_path, cloud, completed)
    assert len(texts) > 5 and any(name.endswith("report.html") for name in texts)
    assert [name for name, text in texts.items() if creds["password"] in text] == []
    assert leftovers(cloud, "ns-pwsecret-") == {}


def test_token_never_appears_in_any_artefact(cloud_factory, tmp_path):
    cloud = cloud_factory(**QUIET_CLOUD)
    creds = cloud.credentials()
    token = cloud.session().get_token()
    completed = _run(tmp_path, cloud, [f"--os-auth-url={creds['auth_url']}", "--os-auth-type=token",
                                       f"--os-token={token}", f"--os-project-name={creds['project_name']}",
                                       "--os-project-domain-name=Default"], "toksecret")
    texts = _artefacts(tmp_path, cloud, completed)
    assert "Summary:" in completed.stdout, completed.stderr[-3000:]
    assert completed.stdout.count(" actions (") >= 2     # the run did its work with that token
    assert [name for name, text in texts.items() if token in text] == []
