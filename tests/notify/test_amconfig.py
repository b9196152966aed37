"""Alertmanager configurations load unchanged (issue 15): the real amtool accepts the files tunewatch loads,
every Alertmanager key works or warns, templates and time intervals work, tunewatch settings live apart."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from tunewatch.alert.model import Alert
from tunewatch.clock import ManualClock
from tunewatch.errors import ConfigError
from tunewatch.notify import NotificationPipeline, NotifyConfig, load_config
from tunewatch.notify.receivers import build_integrations
from tunewatch.notify.route import Route

FIXTURES = Path(__file__).with_name("fixtures")
EXAMPLE = Path(__file__).parents[2] / "deploy" / "alertmanager"
AMTOOL = "/usr/bin/amtool"
MONDAY_10_UTC = 1_767_607_200_000  # 2026-01-05 10:00 UTC (11:00 in Stockholm)
SATURDAY_10_UTC = MONDAY_10_UTC - 2 * 86_400_000


def amtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    if not shutil.which(AMTOOL):
        pytest.skip("amtool is not installed (Debian: apt-get install prometheus-alertmanager)")
    return subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60)


def example_copy(tmp_path: Path) -> Path:
    """The shipped example with its secret files pointed at temporary files."""
    dest = tmp_path / "example"
    shutil.copytree(EXAMPLE, dest)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("smtp_password", "slack_webhook_url", "pagerduty_routing_key"):
        (secrets / name).write_text("https://hooks.example.com/x\n" if "url" in name else "s3cret\n")
    config = dest / "alertmanager.yml"
    config.write_text(config.read_text().replace("/etc/tunewatch/secrets/", f"{secrets}/"))
    return config


@pytest.mark.parametrize("which", ["fixture", "example"])
def test_amtool_accepts_what_tunewatch_loads(which: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = FIXTURES / "alertmanager.yml" if which == "fixture" else example_copy(tmp_path)
    checked = amtool_check(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    with caplog.at_level(logging.WARNING, logger="tunewatch.notify.config"):
        cfg = load_config(path)
    # the one Alertmanager key with no meaning in tunewatch is named in a one-line warning
    assert cfg.warnings == [
        "global.resolve_timeout: accepted, no effect (tunewatch resolves its own alerts explicitly)"
    ]
    assert "resolve_timeout" in caplog.text
    kinds = sorted(key.split("|")[1].split("/")[0] for key in build_integrations(cfg))
    if which == "fixture":
        assert kinds == ["discord", "email", "opsgenie", "pagerduty", "slack", "telegram", "webhook"]
    else:  # the settings file beside the example was read
        assert cfg.external_url == "https://tunewatch.example.com"
        assert cfg.receiver("oncall-pager").rate_limit == "30/minute"  # type: ignore[union-attr]
        assert cfg.delivery.backoff_max == 600_000


def test_amtool_rejects_tunewatch_keys_so_they_live_apart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = tmp_path / "old.yml"
    old.write_text("""
route: {receiver: am}
receivers: [{name: am, rate_limit: 2/minute, alertmanager_configs: [{url: "http://127.0.0.1:9093"}]}]
delivery: {attempts: 5}
external_url: https://tw.example.com
global: {http_timeout: 3s}
""")
    assert amtool_check(old).returncode != 0  # the reason they moved out
    with caplog.at_level(logging.WARNING, logger="tunewatch.notify.config"):
        cfg = load_config(old)  # still accepted, with deprecation warnings
    assert len(cfg.warnings) == 5 and all("deprecated" in w for w in cfg.warnings)
    assert cfg.delivery.attempts == 5 and cfg.external_url == "https://tw.example.com"
    assert cfg.http_timeout_s(None) == 3.0
    # the new place: a settings file beside the config, which amtool never sees
    new = tmp_path / "alertmanager.yml"
    new.write_text("route: {receiver: am}\nreceivers: [{name: am}]\n")
    (tmp_path / "alertmanager.tunewatch.yml").write_text("""
external_url: https://tw.example.com
delivery: {attempts: 5}
receivers: {am: {rate_limit: 2/minute, alertmanager_configs: [{url: "http://127.0.0.1:9093"}]}}
""")
    assert amtool_check(new).returncode == 0
    cfg = load_config(new)
    assert cfg.warnings == [] and cfg.delivery.attempts == 5
    am = cfg.receiver("am")
    assert am is not None and am.rate_limit == "2/minute" and len(am.alertmanager_configs) == 1
    (tmp_path / "alertmanager.tunewatch.yml").write_text("receivers: {nobody: {rate_limit: 1/second}}\n")
    with pytest.raises(ConfigError, match=r"tunewatch\.receivers\.nobody: no receiver 'nobody'"):
        load_config(new)


def test_alertmanager_027_features_load() -> None:
    cfg = load_config(FIXTURES / "alertmanager-0.27.yml")
    tree = Route.build(cfg.route)
    labels = {"alertname": "X", "service name": "playback", "región": "eu-west"}
    assert tree.match(labels)[0].key == '{}/{"región"=~"eu-.*","service name"="playback"}'
    assert sorted(build_integrations(cfg)) == ["teams|msteams/0"]


def test_unsupported_receiver_kinds_and_keys_warn_by_name() -> None:
    cfg = NotifyConfig.from_yaml("""
global: {victorops_api_key: k, smtp_auth_identity: me}
route: {receiver: r}
receivers: [{name: r, victorops_configs: [{routing_key: x}], pushover_configs: [{user_key: a, token: b}]}]
""")
    assert cfg.warnings == [
        "global.smtp_auth_identity/smtp_auth_secret: accepted, not used (tunewatch authenticates with "
        "smtp_auth_username and smtp_auth_password)",
        "global.victorops_api_key: accepted, not used (its receiver kind is not supported by tunewatch)",
        "receivers.r.victorops_configs: not supported by tunewatch: nothing is sent to them",
        "receivers.r.pushover_configs: not supported by tunewatch: nothing is sent to them",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("title: '{{ .CommonLabels.alertname '", "cfg.yml:6: unclosed action"),
        ("title: '{{ .CommonLabelz.alertname }}'", "cfg.yml:6: can't evaluate field CommonLabelz"),
        ("title: '{{ .Status | upper }}'", 'cfg.yml:6: function "upper" not defined'),
        ("title: '{{ template \"nope\" . }}'", 'cfg.yml:6: no such template "nope"'),
        (
            "text: |\n          ok\n          {{ range .Alerts }}{{ .Labelz }}{{ end }}",
            "cfg.yml:8: can't evaluate field Labelz",
        ),
        ("title: '{{ $x }}'", "cfg.yml:6: undefined variable '$x'"),
    ],
)
def test_template_errors_fail_the_load_with_file_and_line(body: str, message: str) -> None:
    text = f"""route: {{receiver: r}}
receivers:
  - name: r
    slack_configs:
      - api_url: http://127.0.0.1:9/x
        {body}
"""
    with pytest.raises(ConfigError) as err:
        NotifyConfig.from_yaml(text, source="cfg.yml")
    assert message in str(err.value)


def test_template_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "t.tmpl").write_text('{{ define "a" }}\nok\n{{ if }}{{ end }}{{ end }}\n')
    (tmp_path / "c.yml").write_text("templates: ['*.tmpl']\nroute: {receiver: r}\nreceivers: [{name: r}]\n")
    with pytest.raises(ConfigError, match=r"t\.tmpl:3: missing value"):
        load_config(tmp_path / "c.yml")


def _alert(labels: dict[str, str], start: int) -> Alert:
    return Alert({"alertname": "AdRevenueDown", **labels}, {"summary": "s"}, "firing", start)


def test_time_intervals_mute_and_activate_routes() -> None:
    cfg = NotifyConfig.from_yaml("""
route:
  receiver: default
  group_wait: 0s
  routes:
    - {receiver: weekdays, matchers: ['team="ads"'], mute_time_intervals: [weekend]}
    - {receiver: office, matchers: ['team="office"'], active_time_intervals: [office-hours]}
time_intervals:
  - name: weekend
    time_intervals: [{weekdays: ['saturday:sunday']}]
  - name: office-hours
    time_intervals: [{times: [{start_time: '09:00', end_time: '17:00'}], weekdays: ['monday:friday'],
                      location: Europe/Stockholm}]
receivers: [{name: default}, {name: weekdays, webhook_configs: [{url: "http://127.0.0.1:9/a"}]},
            {name: office, webhook_configs: [{url: "http://127.0.0.1:9/b"}]}]
""")
    for now, expected in ((SATURDAY_10_UTC, {}), (MONDAY_10_UTC, {"weekdays": 1, "office": 1}),
                          (MONDAY_10_UTC + 7 * 3_600_000, {"weekdays": 1})):  # fmt: skip
        with NotificationPipeline(cfg, ":memory:", ManualClock(now), dry_run=True) as p:
            p.process([_alert({"team": "ads"}, now), _alert({"team": "office"}, now)], now)
            assert p.flush(now).sent == expected, now
            assert p.stats.muted == 2 - sum(expected.values())


def test_muted_notifications_go_out_after_the_interval() -> None:
    cfg = NotifyConfig.from_yaml("""
route: {receiver: r, group_wait: 0s, group_interval: 1h, routes: [{receiver: r, matchers: ['a="1"'],
        mute_time_intervals: [sat]}]}
time_intervals: [{name: sat, time_intervals: [{weekdays: [saturday]}]}]
receivers: [{name: r, webhook_configs: [{url: "http://127.0.0.1:9/a"}]}]
""")
    with NotificationPipeline(cfg, ":memory:", ManualClock(SATURDAY_10_UTC), dry_run=True) as p:
        p.process([_alert({"a": "1"}, SATURDAY_10_UTC)], SATURDAY_10_UTC)
        assert p.flush(SATURDAY_10_UTC).sent == {}
        assert p.flush(SATURDAY_10_UTC + 14 * 3_600_000).sent == {"r": 1}  # Sunday 00:00 UTC


def test_inhibit_rules_in_both_syntaxes() -> None:
    cfg = load_config(FIXTURES / "alertmanager.yml")
    rules = cfg.inhibit_rules
    assert [str(m) for m in rules[1].sources()] == ['severity="critical"']
    assert sorted(str(m) for m in rules[1].targets()) == ['alertname=~".*Up"', 'severity="warning"']
    with NotificationPipeline(cfg.model_copy(update={"route": cfg.route.model_copy(update={"routes": []})}),
                              ":memory:", ManualClock(MONDAY_10_UTC), dry_run=True) as p:  # fmt: skip
        src = Alert({"alertname": "PlaysUp", "severity": "critical", "market": "BR"}, {}, "firing", MONDAY_10_UTC)
        tgt = Alert({"alertname": "PlaysUp", "severity": "warning", "market": "BR"}, {}, "firing", MONDAY_10_UTC)
        other = Alert({"alertname": "PlaysUp", "severity": "warning", "market": "AR"}, {}, "firing", MONDAY_10_UTC)
        p.process([src, tgt, other], MONDAY_10_UTC)
        p.flush(MONDAY_10_UTC + 60_000)
        assert p.stats.inhibited == 1


def test_global_http_config_and_receiver_http_config_reach_the_client(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    cfg = NotifyConfig.from_yaml(f"""
global: {{http_config: {{bearer_token_file: "{token}"}}}}
route: {{receiver: r}}
receivers: [{{name: r, webhook_configs: [{{url: "http://127.0.0.1:9/a"}},
             {{url: "http://127.0.0.1:9/b", http_config: {{basic_auth: {{username: u, password: p}},
               follow_redirects: false}}}}]}}]
""")
    ints = build_integrations(cfg)
    first, second = ints["r|webhook/0"], ints["r|webhook/1"]
    assert first.client.headers["Authorization"] == "Bearer t0ken"  # type: ignore[attr-defined]
    assert "Authorization" not in second.client.headers  # type: ignore[attr-defined]
    assert second.client.follow_redirects is False  # type: ignore[attr-defined]
    assert first.redact("sent t0ken") == "sent <secret>"
    with pytest.raises(ConfigError, match="oauth2 is not supported"):
        NotifyConfig.from_yaml("route: {receiver: r}\nreceivers: [{name: r, webhook_configs: [{url: 'http://x', "
                               "http_config: {oauth2: {client_id: a}}}]}]")  # fmt: skip
