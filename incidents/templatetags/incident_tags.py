from __future__ import annotations

from datetime import datetime

from django import template

from incidents.clocks import Clock, sla_clock
from incidents.models import Incident

register = template.Library()


@register.simple_tag
def clock_for(incident: Incident, now: datetime) -> Clock:
    """`{% clock_for incident now as clock %}`: the response-SLA clock (incidents.clocks)."""
    return sla_clock(incident, now)
