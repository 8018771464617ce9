"""What the kill switch adds to an incident's recovery and messages: the "Kill-switch ready to
deactivate" fact, and its state in the playbook's messages."""

from __future__ import annotations

from comms.rendering import provide
from incidents import facts
from incidents.facts import Fact
from incidents.models import Incident
from killswitch.backends import Condition
from killswitch.targets import target_for


def kill_switch_ready(incident: Incident) -> Fact:
    """Ready to deactivate: the incident's target can be read (halted, or already trading). An
    unevaluable or unreachable kill switch is not ready: nobody can tell what a resume would do."""
    target = target_for(is_drill=incident.is_drill)
    if target is None:
        return Fact(None, "No drill target is configured")
    state = target.backend().read()  # bounded by the backend's timeout
    if state.condition == Condition.HALTED:
        return Fact(True, f"{target.label} halted ({state.reason or 'no reason'}): a resume can be requested")
    if state.condition == Condition.TRADING:
        return Fact(True, f"{target.label} is trading: nothing to deactivate")
    return Fact(False, f"{target.label} is {state.condition}: {state.detail or state.message}"[:200])


def kill_switch_text(incident: Incident) -> str:
    """The playbook's "Kill-Switch: Active/Inactive" line of a message."""
    target = target_for(is_drill=incident.is_drill)
    if target is None:
        return "no drill target"
    state = target.backend().read()
    if state.condition == Condition.HALTED:
        return f"Active on {target.label} ({state.reason or 'halted'})"
    if state.condition == Condition.TRADING:
        return f"Inactive on {target.label} (trading)"
    return f"{state.condition.capitalize()} on {target.label}: {state.detail or state.message}"[:200]


def register() -> None:
    facts.register("kill_switch_ready", kill_switch_ready)
    provide("kill_switch", kill_switch_text)
