"""The base of every domain error: a rule refused an action, and nothing was changed."""

from __future__ import annotations


class DomainError(Exception):
    """An action the rules refuse. The message says what to do instead; views show it as it is
    (a form error, or a 409 with the message), never as a server error."""
