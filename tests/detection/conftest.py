from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.standins.health import HealthStandIn, Mode


@pytest.fixture
def standins() -> Iterator[Callable[..., HealthStandIn]]:
    """Start stand-ins of CDB's services on demand (`standins("risk", mode=...)`); all are stopped
    afterwards."""
    started: list[HealthStandIn] = []

    def start(kind: str, mode: Mode | str = Mode.HEALTHY, **kwargs: Any) -> HealthStandIn:
        standin = HealthStandIn(kind, **kwargs).start()
        standin.set_mode(mode)
        started.append(standin)
        return standin

    yield start
    for standin in started:
        standin.stop()
