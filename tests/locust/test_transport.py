"""`--transport fast`: keystoneauth over geventhttpclient, against the embedded cloud over real HTTP."""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys

import gevent
import gevent.socket
import pytest
import requests
from keystoneauth1 import exceptions as ks
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from locust_runs import FAST, cli_credentials, run_locust, servers_named
from novastress_locust.credentials import CloudTarget
from novastress_locust.transport import FastResponse, FastSession, use_transport


def _fast_session(cloud, **kwargs) -> ks_session.Session:
    session = ks_session.Session(auth=v3.Password(**cloud.credentials()), session=FastSession(), **kwargs)
    return session


@pytest.fixture(scope="module")
def fast(cloud):
    session = _fast_session(cloud)
    yield session
    session.session.close()


@pytest.fixture(scope="module")
def compute(fast):
    return fast.get_endpoint(service_type="compute", interface="public")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_answers_match_plain_requests(cloud, fast, compute):
    plain = cloud.session()
    for path in ("/flavors", "/flavors/detail", "/servers/detail", "/os-hypervisors"):
        ours = fast.get(compute + path, raise_exc=False)
        theirs = plain.get(compute + path, raise_exc=False)
        assert isinstance(ours, FastResponse)
        assert ours.status_code == theirs.status_code
        assert ours.json() == theirs.json()
        assert ours.text == theirs.text and ours.content == theirs.content
        assert ours.headers["Content-Type"] == theirs.headers["Content-Type"]
        # header names are case-insensitive, like requests'
        request_id = ours.headers["x-openstack-request-id"]
        assert request_id.startswith("req-") and ours.headers["X-OPENSTACK-REQUEST-ID"] == request_id
        assert ours.request.headers["x-auth-token"] == fast.get_token()
        assert ours.request.method == "GET" and ours.url == compute + path
        assert ours.elapsed.total_seconds() > 0
    # every one of those went the fast way, none fell back to requests
    assert fast.session.fast_calls >= 4 and fast.session.fallback_calls == 0


def test_query_parameters_body_and_status_codes(fast, compute):
    flavor = fast.get(compute + "/flavors").json()["flavors"][0]["id"]
    image = fast.get(fast.get_endpoint(service_type="image", interface="public") + "/v2/images").json()[
        "images"][0]["id"]
    name = "transport test/ä+&=?"
    created = fast.post(compute + "/servers", json={"server": {
        "name": name, "imageRef": image, "flavorRef": flavor, "networks": "none"}},
        headers={"OpenStack-API-Version": "compute 2.37"}, raise_exc=False)
    assert created.status_code == 202, created.text
    server_id = created.json()["server"]["id"]
    try:
        # the name round-trips through the query string: encoded the way requests encodes it
        params = {"name": f"^{re.escape(name)}$"}
        found = fast.get(compute + "/servers", params=params, raise_exc=False)
        assert found.status_code == 200
        assert [s["id"] for s in found.json()["servers"]] == [server_id]
        assert found.url == requests.Request("GET", compute + "/servers", params=params).prepare().url
        shown = fast.get(compute + f"/servers/{server_id}").json()["server"]
        assert shown["name"] == name
    finally:
        deleted = fast.delete(compute + f"/servers/{server_id}", raise_exc=False)
        assert deleted.status_code == 204
    missing = fast.get(compute + "/servers/00000000-0000-0000-0000-000000000000", raise_exc=False)
    assert missing.status_code == 404 and "itemNotFound" in missing.json()
    assert not missing.ok
    # keystoneauth turns error answers into its own exceptions, message from the body
    with pytest.raises(ks.NotFound) as raised:
        fast.get(compute + "/servers/00000000-0000-0000-0000-000000000000")
    assert raised.value.http_status == 404 and raised.value.request_id.startswith("req-")
    with pytest.raises(ks.BadRequest):
        fast.post(compute + "/servers", json={"server": {}})


def test_expired_token_reauthenticates(cloud, compute):
    session = _fast_session(cloud)
    token = session.get_token()
    session.auth.invalidate()
    assert session.get(compute + "/flavors").status_code == 200
    assert session.get_token() != token


def test_connection_refused_is_connect_failure(cloud):
    session = _fast_session(cloud)
    with pytest.raises(ks.ConnectFailure) as raised:
        session.get(f"http://127.0.0.1:{_closed_port()}/compute/v2.1/flavors", authenticated=False)
    assert not isinstance(raised.value, ks.ConnectTimeout)
    assert "refused" in str(raised.value).lower()
    # below keystoneauth: requests' own exception type
    with pytest.raises(requests.exceptions.ConnectionError):
        FastSession().request("GET", f"http://127.0.0.1:{_closed_port()}/", allow_redirects=False, timeout=5)


def test_silent_server_times_out():
    """A server that accepts and never answers: ReadTimeout below, ConnectTimeout from keystoneauth."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            FastSession().request("GET", f"http://127.0.0.1:{port}/", allow_redirects=False, timeout=0.3)
        session = ks_session.Session(session=FastSession(), timeout=0.3)
        with pytest.raises(ks.ConnectTimeout):
            session.get(f"http://127.0.0.1:{port}/compute", authenticated=False)
    finally:
        listener.close()


def test_server_closing_mid_answer_is_connect_failure():
    """A truncated answer (connection closed before the body's end) is an error, not a short body."""
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def answer_half() -> None:
        for _ in range(4):
            connection, _ = listener.accept()
            accepted.append(1)
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 100\r\n\r\n{\"half\":")
            connection.close()
    server = gevent.spawn(answer_half)
    try:
        with pytest.raises(ks.ConnectFailure) as raised:
            ks_session.Session(session=FastSession(), timeout=5).get(f"http://127.0.0.1:{port}/",
                                                                     authenticated=False)
        assert not isinstance(raised.value, ks.ConnectTimeout)
        assert accepted == [1]
    finally:
        server.kill()
        listener.close()


TLS_SERVER = """
import http.server, json, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-OpenStack-Request-ID", "req-tls")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A JSON answer over TLS on loopback, with a self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    # its own process: the answer must not depend on this one being gevent-patched
    server = subprocess.Popen([sys.executable, "-c", TLS_SERVER, str(cert_path), str(key_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        yield f"https://127.0.0.1:{port}", str(cert_path)
    finally:
        server.kill()
        server.wait(timeout=10)


def test_tls_honours_ca_bundle_and_insecure(tls_server):
    url, ca_bundle = tls_server
    trusting = ks_session.Session(session=FastSession(), verify=ca_bundle, timeout=10)
    answer = trusting.get(url + "/v3", params={"a": "b"}, authenticated=False)
    assert answer.json() == {"path": "/v3?a=b"}
    assert answer.headers["x-openstack-request-id"] == "req-tls"
    insecure = ks_session.Session(session=FastSession(), verify=False, timeout=10)
    assert insecure.get(url + "/v3", authenticated=False).status_code == 200
    # the default trust store (requests' certifi bundle) does not know this certificate
    default = ks_session.Session(session=FastSession(), timeout=10)
    with pytest.raises(ks.SSLError):
        default.get(url + "/v3", authenticated=False)
    assert trusting.session.fallback_calls == insecure.session.fallback_calls == 0


def test_use_transport_replaces_only_what_it_may(cloud, monkeypatch):
    target = CloudTarget("password", dict(cloud.credentials()), "test")
    session = target.session(target.plugin())
    use_transport(session, "requests")
    assert type(session.session) is requests.Session
    use_transport(session, "fast")
    assert isinstance(session.session, FastSession)
    endpoint = session.get_endpoint(service_type="compute", interface="public")
    assert session.get(endpoint + "/flavors").json()["flavors"]
    # a proxy from the environment applies to the cloud: requests keeps the calls
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = target.session(target.plugin())
    use_transport(proxied, "fast")
    assert not isinstance(proxied.session, FastSession)
    with pytest.raises(ValueError):
        use_transport(session, "curl")


def test_create_destroy_run_with_fast_transport_leaves_nothing(cloud):
    run = run_locust(["-u", "4", "-t", "8s", "--transport", "fast", *FAST, *cli_credentials(cloud)],
                     timeout=90)
    runs, failed = run.totals()
    assert runs > 0 and failed == 0, run.output[-3000:]
    assert run.returncode == 0, run.output[-3000:]
    assert run.stats_row("POST", "compute POST /servers")[1] == 0
    assert "Traceback" not in run.output
    assert servers_named(cloud, f"ns-{run.run_id}-") == []
    assert "LEAKED" not in run.stdout


def test_pooled_connections_are_reused_past_1024_open_files(cloud, compute):
    """A worker with a thousand users holds over 1,024 sockets: a pooled connection must still be
    judged alive (select() cannot watch such descriptors) instead of reconnecting on every call."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1400
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted, "raise the open-files limit to 1,400"
    held = []
    try:
        while len(held) < 1100:          # push the next sockets past descriptor 1,024
            held.extend(os.pipe())
        session = _fast_session(cloud)
        for _ in range(20):
            assert session.get(f"{compute}/flavors").status_code == 200
        assert session.session.connections <= 2, session.session.connections
        session.session.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
