"""Where the console's own requests may go: health checks and Prometheus queries.

Their URLs are editable (Django admin, `load_services --base-url`, PROMETHEUS_URL), so each may reach
only a host in settings.DETECTION_ALLOWED_HOSTS: host names (exact, case-insensitive), IP addresses
and networks (`10.0.0.0/8`). Unset, the list is CDB's container names (detection/data/services.yaml),
cdb_prometheus, localhost and the loopback addresses. The host is judged as the URL writes it, before
DNS: a name outside the list is refused whatever it resolves to, and a listed name resolves through
the deployment's own DNS. Redirects are never followed (callers say so), and every timeout is capped
by settings.DETECTION_MAX_TIMEOUT, so an edited URL can neither read another service nor hold a
worker for minutes.
"""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError

SERVICES_FILE: Final = Path(__file__).parent / "data" / "services.yaml"
# Besides the services file's names: the Prometheus of CDB's stack, and this host itself.
DEFAULT_EXTRA: Final = ("cdb_prometheus", "localhost", "127.0.0.0/8", "::1")
MIN_TIMEOUT: Final = 0.1
SETTING: Final = "DETECTION_ALLOWED_HOSTS"
# Every outbound request goes straight to the allowed host: no redirect followed (it could lead
# anywhere), no proxy from the environment.
CLIENT_OPTIONS: Final[dict[str, Any]] = {"follow_redirects": False, "trust_env": False}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class HostNotAllowed(ValueError):
    pass


@cache
def _container_names() -> tuple[str, ...]:
    data = yaml.safe_load(SERVICES_FILE.read_text(encoding="utf-8"))
    return tuple(str(item["name"]) for item in data["services"])


def allowed_hosts() -> list[str]:
    """The allow-list as configured, or the default (see the module's docstring)."""
    configured = getattr(settings, SETTING, None)
    if configured is None:
        return [*_container_names(), *DEFAULT_EXTRA]
    return [str(entry).strip() for entry in configured if str(entry).strip()]


@cache
def _parsed(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[Network, ...]]:
    names: set[str] = set()
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.lower())
    return frozenset(names), tuple(networks)


def host_allowed(host: str | None) -> bool:
    if not host:
        return False
    names, networks = _parsed(tuple(allowed_hosts()))
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower() in names
    return any(address in network for network in networks)


def check_url(url: str) -> str:
    """The URL's host, if the allow-list holds it; HostNotAllowed (or ValueError for a URL without a
    host) otherwise. `host:port` without a scheme (a TCP check's short form) is read as tcp://."""
    text = url.strip()
    host = urlsplit(text if "://" in text else f"tcp://{text}").hostname
    if not host:
        raise ValueError(f"{url!r} names no host")
    if not host_allowed(host):
        raise HostNotAllowed(f"host {host!r} is not in {SETTING}")
    return host


def max_timeout() -> float:
    return float(settings.DETECTION_MAX_TIMEOUT)


def bounded_timeout(seconds: float) -> float:
    """A timeout as used: at least MIN_TIMEOUT, at most DETECTION_MAX_TIMEOUT."""
    return min(max(float(seconds), MIN_TIMEOUT), max_timeout())


def validate_timeout(value: float) -> None:
    """Model validation of a check's timeout (the same bound applies again at use)."""
    if value < MIN_TIMEOUT:
        raise ValidationError(f"A timeout must be at least {MIN_TIMEOUT:g} s.")
    if value > max_timeout():
        raise ValidationError(f"A timeout must be at most {max_timeout():g} s (DETECTION_MAX_TIMEOUT).")
