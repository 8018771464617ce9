"""Roles are Django groups (created by migration 0002) carrying model permissions."""

from __future__ import annotations

VIEWER, RESPONDER, LEAD, EXECUTIVE, ADMIN = "viewer", "responder", "lead", "executive", "admin"
ROLES = (VIEWER, RESPONDER, LEAD, EXECUTIVE, ADMIN)


def role_of(user: object) -> str:
    """The highest role a user holds, for display."""
    names = {g.name for g in user.groups.all()}  # type: ignore[attr-defined]
    for role in (ADMIN, LEAD, RESPONDER, EXECUTIVE, VIEWER):
        if role in names:
            return role
    return "superuser" if getattr(user, "is_superuser", False) else "no role"
