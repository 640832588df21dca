"""contrib/: the Prometheus alert rules and the Grafana dashboard.

The rules pass `promtool check rules` and their own `promtool test rules`
cases; every metric the rules and the dashboard name is one a running server
exposes on /metrics (so a renamed metric breaks this test, not a pager).
"""

from __future__ import annotations

import json
import re

import yaml
from harness import REPO_ROOT, ServerProcess, http_get, require_tool, run

RULES = REPO_ROOT / "contrib" / "prometheus" / "ddns-server-alerts.yml"
RULE_TESTS = REPO_ROOT / "contrib" / "prometheus" / "ddns-server-alerts.test.yml"
DASHBOARD = REPO_ROOT / "contrib" / "grafana" / "ddns-server-dashboard.json"
# Series Prometheus itself makes for every target.
PROMETHEUS_OWN = {"up"}


def test_promtool_checks_the_rules() -> None:
    promtool = require_tool("promtool")
    proc = run([promtool, "check", "rules", str(RULES)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr
    proc = run([promtool, "test", "rules", str(RULE_TESTS)], cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exposed_names(server: ServerProcess) -> set[str]:
    """Every sample name /metrics can show, from its `# TYPE` lines."""
    status, body = http_get(server.http_url + "/metrics")
    assert status == 200, body
    names: set[str] = set()
    for line in body.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if not match:
            continue
        name, kind = match.groups()
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("", "_count", "_sum", "_created"),
        }.get(kind, ("",))
        names.update(name.removesuffix("_total") + s if s else name for s in suffixes)
    return names


def expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"], "a dashboard without panels"
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        exprs += [target["expr"] for target in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return exprs


def test_rules_and_dashboard_name_only_exposed_metrics(example_server: ServerProcess) -> None:
    exposed = exposed_names(example_server)
    assert "ddns_updates_total" in exposed and "ddns_zone_serial" in exposed, sorted(exposed)
    used: set[str] = set()
    for expr in expressions():
        # metric names: identifiers before a selector, a range or the end of a call's argument
        body = re.sub(r'"[^"]*"', '""', expr)  # not label values
        body = re.sub(r"\{[^}]*\}", "{}", body)  # not label names
        for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", body):
            if word.startswith("ddns_") or word in PROMETHEUS_OWN:
                used.add(word)
    unknown = used - exposed - PROMETHEUS_OWN
    assert not unknown, f"not on /metrics: {sorted(unknown)}"
    # every family the server exposes is on the dashboard
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    assert {
        "ddns_queries",
        "ddns_updates",
        "ddns_notify",
        "ddns_dyndns2_requests",
        "ddns_query_latency_seconds",
        "ddns_zone_serial",
    } <= families
