"""HTTPS for the REST API, and ``dnctl pki init``: a real ``dnctl controller`` serving TLS, and clients that verify.

- ``ControllerProcess(https=True)`` starts the controller with ``--api-cert/--api-key`` (its
  throw-away CA); every answer carries ``Strict-Transport-Security``;
- the client library and ``dnctl`` verify the certificate: with the right CA (``--ca`` or
  ``$DNCTL_CA``) they work; with none, or another CA, they fail with one line naming ``--ca``
  (exit 1), never by skipping verification; an unreadable ``--ca`` is a usage error (exit 2);
  ``http://`` to the HTTPS port fails in one line;
- ``dnctl pki init`` writes a CA, the controller's certificate and the switches' (every dpid of the
  topology; one switch's with ``--switch``), private keys mode 0600, and refuses to replace a CA
  without ``--force``; ``dnctl controller --pki DIR`` takes that folder.
"""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess

import httpx
import pytest
from cryptography import x509

from apihelpers import beijing_line
from controller.switchauth import cert_dpids
from tools.client import ApiClient, TlsFailed
from tools.emulation.controller_proc import DNCTL, ControllerProcess
from tools.emulation.pki import Pki
from topologies.hosts import HostPlan


def _dnctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DNCTL_")}
    return subprocess.run([DNCTL, *args], capture_output=True, text=True, timeout=60, env={**base, **(env or {})})


@pytest.fixture(scope="module")
def https_controller(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("https")
    topo = beijing_line("httpsline")
    with ControllerProcess(topo, HostPlan(topo), log_dir=tmp, start_timeout=60, https=True) as ctl:
        yield ctl


def test_the_api_answers_over_https_with_hsts(https_controller):
    ctl = https_controller
    assert ctl.url.startswith("https://127.0.0.1:")
    assert ctl.client().get("/healthz")["status"] in ("ok", "degraded")      # degraded: no switch connected
    r = httpx.get(f"{ctl.url}/healthz", verify=ssl.create_default_context(cafile=ctl.ca), trust_env=False)
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    r = httpx.get(f"{ctl.url}/v1/tenants", verify=ssl.create_default_context(cafile=ctl.ca), trust_env=False)
    assert r.status_code == 401 and "strict-transport-security" in r.headers     # errors carry it too
    assert f"REST on {ctl.url}" in ctl.log_path.read_text()


def test_the_client_library_never_skips_verification(https_controller, tmp_path):
    ctl = https_controller
    other = Pki.create(tmp_path / "other")
    for ca in (None, str(other.ca_cert)):
        with pytest.raises(TlsFailed, match="does not verify .*--ca or \\$DNCTL_CA") as e:
            ApiClient(ctl.url, ctl.admin_token, ca=ca).get("/v1/tenants")
        assert "\n" not in str(e.value) and e.value.code == 1


def test_dnctl_verifies_with_ca_or_dnctl_ca_and_fails_in_one_line_without(https_controller, tmp_path):
    ctl = https_controller
    token = {"DNCTL_ADMIN_TOKEN": ctl.admin_token}
    ok = _dnctl("tenant", "list", "--url", ctl.url, "--ca", ctl.ca, "--json", env=token)
    assert ok.returncode == 0, ok.stderr
    assert isinstance(json.loads(ok.stdout), (list, dict))
    assert _dnctl("tenant", "list", "--url", ctl.url, "--json", env={**token, "DNCTL_CA": ctl.ca}).returncode == 0
    bad = _dnctl("tenant", "list", "--url", ctl.url, env=token)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "presented a certificate that does not verify (unable to get local issuer certificate) against the " \
        "system CAs: give the CA that signed it (--ca or $DNCTL_CA)" in bad.stderr
    missing = _dnctl("tenant", "list", "--url", ctl.url, "--ca", str(tmp_path / "nope.pem"), env=token)
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nope.pem: no such file"), missing.stderr
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    junk = _dnctl("tenant", "list", "--url", ctl.url, "--ca", str(tmp_path / "junk.pem"), env=token)
    assert junk.returncode == 2 and "not a readable PEM certificate" in junk.stderr, junk.stderr
    plain = _dnctl("tenant", "list", "--url", ctl.url.replace("https://", "http://"), env=token)
    assert plain.returncode == 1 and len(plain.stderr.strip().splitlines()) == 1, plain.stderr
    assert "(if it serves HTTPS, use https://)" in plain.stderr
    assert "Traceback" not in plain.stderr + bad.stderr + missing.stderr


def test_pki_init_writes_what_controller_and_switches_need(tmp_path):
    folder = tmp_path / "pki"
    r = _dnctl("pki", "init", str(folder), "--topology", "fntf40", "--switch", "Beijing", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["topology"] == "fntf40" and out["files"]["switches"]["dpids"] == 40
    for name in ("ca", "controller", "switches", "Beijing"):
        assert stat.S_IMODE(os.stat(out["files"][name]["key"]).st_mode) == 0o600, name
    plan = HostPlan(__import__("topologies.loaders", fromlist=["load_topology"]).load_topology("fntf40"))

    def named(path: str) -> frozenset[int]:
        cert = x509.load_pem_x509_certificate(open(path, "rb").read())
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return cert_dpids({"subjectAltName": [("URI", u) for u in uris.get_values_for_type(
            x509.UniformResourceIdentifier)]})

    assert named(out["files"]["switches"]["cert"]) == {plan.dpid(n) for n in plan.topology.nodes}
    assert named(out["files"]["Beijing"]["cert"]) == {plan.dpid("Beijing")}
    again = _dnctl("pki", "init", str(folder), "--topology", "fntf40")
    assert again.returncode == 2 and "already holds a CA" in again.stderr and "--force" in again.stderr
    assert _dnctl("pki", "init", str(folder), "--topology", "fntf40", "--force").returncode == 0
    nosuch = _dnctl("pki", "init", str(tmp_path / "p2"), "--topology", "fntf40", "--switch", "Atlantis")
    assert nosuch.returncode == 2 and "--switch Atlantis: no such switch in fntf40" in nosuch.stderr
    assert not (tmp_path / "p2" / "ca.key").exists()          # refused before anything was written
