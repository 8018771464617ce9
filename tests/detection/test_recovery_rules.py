"""The playbook's section 7 thresholds as recovery rules, against a real Prometheus: they open no
incident; they make "Metrics baseline normal" false while they fire."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from detection.facts import metrics_normal
from detection.models import PrometheusRule, RulePurpose, Signal
from detection.prometheus import rules_evaluate
from incidents.models import Incident
from tests.detection.test_prometheus import real, stack, value_is  # noqa: F401  (fixtures)
from tests.incidents.factories import declare

pytestmark = pytest.mark.django_db


@pytest.mark.xdist_group("prometheus")
def test_a_firing_recovery_rule_opens_nothing_and_fails_the_fact(real):  # noqa: F811
    call_command("load_prometheus_rules", verbosity=0)
    recovery = set(PrometheusRule.objects.filter(purpose=RulePurpose.RECOVERY).values_list("name", flat=True))
    assert recovery == {"recovery-error-rate", "recovery-latency"}
    incident = declare()
    assert rules_evaluate()["recovery-error-rate"] == "inactive"
    assert metrics_normal(incident).ok is True
    # 2 rejected of 1,000 received: 0.2 %, above the playbook's 0.1 %.
    real.execution.inc("execution_orders_received_total", 1000)
    real.execution.inc("execution_orders_rejected_total", 2)
    real.prometheus.wait_for(
        "sum(rate(execution_orders_rejected_total[5m])) / sum(rate(execution_orders_received_total[5m]))",
        lambda s: bool(s) and s[0][1] > 0.001,
    )
    assert rules_evaluate()["recovery-error-rate"] == "firing"
    assert not Signal.objects.filter(fingerprint="rule:recovery-error-rate").exists()
    assert Incident.objects.count() == 1  # only the one declared above
    fact = metrics_normal(incident)
    assert (fact.ok, fact.detail) == (False, "Above the threshold: recovery-error-rate firing")
