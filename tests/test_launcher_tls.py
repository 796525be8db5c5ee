"""``controller.launcher.resolve``: the OpenFlow TLS options, from the command line and the config file.

All three files or none; each readable; not with plain TCP; relative paths in the config are
relative to the config file; the command line wins; booleans are booleans. Each mistake is one
line naming the option (``LaunchError`` code 2, what ``dnctl controller`` exits with).
"""

from __future__ import annotations

import pytest

from apihelpers import beijing_line
from controller.launcher import LaunchError, LaunchOptions, resolve
from tools.emulation.pki import Pki


@pytest.fixture
def env(tmp_path):
    topo = tmp_path / "line.json"
    topo.write_text(beijing_line("tlsconf").to_json())
    pki = Pki.create(tmp_path / "pki")
    files = dict(of_key=str(pki.controller.key), of_cert=str(pki.controller.cert), of_ca=str(pki.ca_cert))
    return tmp_path, str(topo), files


def _opts(tmp_path, topo, **kw):
    return LaunchOptions(topology=topo, db=str(tmp_path / "state.db"), **kw)


def test_no_tls_is_refused_unless_plain_is_asked_and_three_files_make_tls(env):
    tmp_path, topo, files = env
    with pytest.raises(LaunchError, match="^OpenFlow needs TLS: give --pki DIR") as e:
        resolve(_opts(tmp_path, topo))
    assert e.value.code == 2
    r = resolve(_opts(tmp_path, topo, of_plain=True))
    assert (r.of_tls, r.of_plain, r.require_cert_dpid, r.api_tls) == (None, True, True, None)
    r = resolve(_opts(tmp_path, topo, **files, require_cert_dpid=False))
    assert r.of_tls == (files["of_key"], files["of_cert"], files["of_ca"]) and not r.require_cert_dpid


@pytest.mark.parametrize("drop", ["of_key", "of_cert", "of_ca"])
def test_a_missing_file_among_the_three_is_named(env, drop):
    tmp_path, topo, files = env
    flag = "--" + drop.replace("_", "-")
    with pytest.raises(LaunchError, match=f"missing: {flag}$") as e:
        resolve(_opts(tmp_path, topo, **{k: v for k, v in files.items() if k != drop}))
    assert e.value.code == 2


def test_unreadable_files_and_plain_with_tls_are_refused(env):
    tmp_path, topo, files = env
    with pytest.raises(LaunchError, match=r"^--of-ca .*nope\.pem: cannot read: No such file"):
        resolve(_opts(tmp_path, topo, **{**files, "of_ca": str(tmp_path / "nope.pem")}))
    with pytest.raises(LaunchError, match="--of-plain .* and TLS files together"):
        resolve(_opts(tmp_path, topo, **files, of_plain=True))


def test_config_file_paths_are_relative_to_it_and_the_command_line_wins(env):
    tmp_path, topo, files = env
    cfg = tmp_path / "controller.toml"
    cfg.write_text('[openflow]\ntls_key = "pki/controller.key"\ntls_cert = "pki/controller.crt"\n'
                   'tls_ca = "pki/ca.crt"\nrequire_cert_dpid = false\n')
    r = resolve(_opts(tmp_path, topo, config=str(cfg)))
    assert r.of_tls == (files["of_key"], files["of_cert"], files["of_ca"]) and r.require_cert_dpid is False
    assert resolve(_opts(tmp_path, topo, config=str(cfg), require_cert_dpid=True)).require_cert_dpid
    other = Pki.create(tmp_path / "other")
    r = resolve(_opts(tmp_path, topo, config=str(cfg), of_ca=str(other.ca_cert)))
    assert r.of_tls[2] == str(other.ca_cert) and r.of_tls[0] == files["of_key"]
    cfg.write_text('[openflow]\nplain = "yes"\n')
    with pytest.raises(LaunchError, match="openflow.plain must be true or false"):
        resolve(_opts(tmp_path, topo, config=str(cfg)))
    cfg.write_text('[openflow]\ntls_key = 3\n')
    with pytest.raises(LaunchError, match="openflow.tls_key must be a file name"):
        resolve(_opts(tmp_path, topo, config=str(cfg)))


def test_pki_folder_stands_for_openflow_tls_and_https_and_flags_win(env):
    tmp_path, topo, files = env
    folder = str(tmp_path / "pki")
    r = resolve(_opts(tmp_path, topo, pki=folder))
    assert r.of_tls == (files["of_key"], files["of_cert"], files["of_ca"])
    assert r.api_tls == (files["of_cert"], files["of_key"]) and r.api_url.startswith("https://127.0.0.1:")
    other = Pki.create(tmp_path / "other")
    r = resolve(_opts(tmp_path, topo, pki=folder, of_ca=str(other.ca_cert)))
    assert r.of_tls[2] == str(other.ca_cert)
    (tmp_path / "pki" / "ca.crt").unlink()
    with pytest.raises(LaunchError, match=r"--pki .*: missing ca\.crt \(`dnctl pki init` writes them\)$"):
        resolve(_opts(tmp_path, topo, pki=folder))


def test_https_from_the_config_is_relative_to_it_and_needs_both_files(env):
    tmp_path, topo, files = env
    cfg = tmp_path / "controller.toml"
    cfg.write_text('api_tls_cert = "pki/controller.crt"\napi_tls_key = "pki/controller.key"\n'
                   '[openflow]\nplain = true\n')
    r = resolve(_opts(tmp_path, topo, config=str(cfg)))
    assert r.api_tls == (files["of_cert"], files["of_key"]) and r.of_tls is None
    cfg.write_text('api_tls_cert = "pki/controller.crt"\n[openflow]\nplain = true\n')
    with pytest.raises(LaunchError, match="^HTTPS needs both --api-cert and --api-key"):
        resolve(_opts(tmp_path, topo, config=str(cfg)))
    assert resolve(_opts(tmp_path, topo, of_plain=True)).api_url.startswith("http://127.0.0.1:")


def test_a_certificate_and_key_that_do_not_load_together_are_one_line_at_start(env):
    tmp_path, topo, files = env
    other = Pki.create(tmp_path / "other")
    cases = [(dict(files, of_key=files["of_ca"]), r"^--of-cert/--of-key .*: the certificate and key do not load "
                                                    r"together \(not a PEM certificate and its private key\)$"),
             (dict(files, of_key=str(other.controller.key)), "do not load together \\(key values mismatch\\)$"),
             (dict(files, of_ca=files["of_key"]), r"^--of-ca .*: not a CA certificate"),
             (dict(of_plain=True, api_cert=files["of_key"], api_key=files["of_key"]), r"^--api-cert/--api-key ")]
    for kw, message in cases:
        with pytest.raises(LaunchError, match=message) as e:
            resolve(_opts(tmp_path, topo, **kw))
        assert e.value.code == 2 and "BEGIN" not in str(e.value)     # names the files, never their content
