"""``plugins.prometheus``: the defaults, the address forms, and a bad section refused as a whole
with every problem named by its path; a listener off loopback without TLS or basic auth is
refused (fail closed) unless the admin says ``allow_insecure_remote``."""

from __future__ import annotations

import pytest

from ds01_core.domain.config import ConfigError
from ds01_prometheus.config import DOCKER_ROOT, ListenError, PrometheusConfig, parse_listen
from tests.plugins.prometheus.exporter_helpers import make_runtime


def load(tmp_path, section: dict):
    return make_runtime(tmp_path, {"plugins": {"prometheus": section}})


def refused(tmp_path, section: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, section)
    return str(caught.value)


def test_defaults(tmp_path):
    runtime = make_runtime(tmp_path, {"plugins": {"prometheus": {}}})
    cfg = runtime.plugin_config("prometheus")
    assert cfg.listen == "127.0.0.1:9101" and cfg.address() == ("127.0.0.1", 9101)
    assert not cfg.tls and not cfg.basic_auth
    assert cfg.alert_receiver.enabled and cfg.alert_receiver.notice_user == "root"
    paths = runtime.config.paths
    assert cfg.filesystem_paths(str(paths.state_dir), str(paths.log_dir)) == [
        str(paths.state_dir),
        str(paths.log_dir),
        DOCKER_ROOT,
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9101", ("127.0.0.1", 9101)),
        ("[::1]:19301", ("::1", 19301)),
        ("localhost:80", ("localhost", 80)),
        (":9101", ("", 9101)),
    ],
)
def test_listen_forms(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9101", "::1:9101", "[nothost]:9101", "a b:1", "h:99999", "h:"])
def test_bad_listen_forms(text):
    with pytest.raises(ListenError):
        parse_listen(text)


def test_every_problem_is_listed_by_its_path(tmp_path):
    message = refused(
        tmp_path,
        {
            "listen": "[::1]9101",
            "tls_cert_file": "/etc/ds01/exporter.crt",  # no key
            "basic_auth_password_file": "relative/pw",  # not absolute, and no user name
            "filesystems": ["/srv", "data"],
            "alert_receiver": {"token_file": "token"},
            "colour": "blue",
        },
    )
    for expected in (
        "plugins.prometheus.basic_auth_password_file",
        "plugins.prometheus.filesystems[1]",
        "plugins.prometheus.alert_receiver.token_file",
        "plugins.prometheus.colour",
    ):
        assert expected in message, message
    # cross-field problems, once the types are right (the core checks types first)
    message = refused(
        tmp_path,
        {
            "listen": "[::1]9101",
            "tls_cert_file": "/etc/ds01/exporter.crt",
            "basic_auth_password_file": "/etc/ds01/pw",
        },
    )
    assert "plugins.prometheus.listen: expected host:port" in message, message
    assert "plugins.prometheus.tls_key_file: TLS needs both" in message, message
    assert "plugins.prometheus.basic_auth_username: basic auth needs both" in message, message


def test_off_loopback_without_tls_or_auth_is_refused(tmp_path):
    message = refused(tmp_path, {"listen": "0.0.0.0:9101"})
    assert "plugins.prometheus.listen: 0.0.0.0 is reachable from other machines" in message
    assert "every address" in refused(tmp_path, {"listen": ":9101"})
    assert "reachable" in refused(tmp_path, {"listen": "[::]:9101"})
    assert "reachable" in refused(tmp_path, {"listen": "gpu01.example.org:9101"})
    # each way out is accepted
    for section in (
        {"listen": "0.0.0.0:9101", "allow_insecure_remote": True},
        {"listen": "0.0.0.0:9101", "tls_cert_file": "/c.pem", "tls_key_file": "/k.pem"},
        {
            "listen": "0.0.0.0:9101",
            "basic_auth_username": "prometheus",
            "basic_auth_password_file": "/etc/ds01/pw",
        },
        {"listen": "[::1]:9101"},
        {"listen": "localhost:9101"},
    ):
        assert isinstance(load(tmp_path, section).plugin_config("prometheus"), PrometheusConfig)
