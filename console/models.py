"""What every app shares: the session table and the periodic jobs' heartbeats."""

from __future__ import annotations

from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class ConsoleSession(AbstractBaseSession):
    """Database session that also stores the user id, so one query can authorise a live-page poll."""

    user_id = models.BigIntegerField(null=True, db_index=True)

    @classmethod
    def get_session_store_class(cls):  # type: ignore[no-untyped-def]
        from console.sessions import SessionStore

        return SessionStore


class Heartbeat(models.Model):
    """When each periodic job last succeeded, and its last failure: the top bar's liveness reads these.

    A job writes `last_seen` when a run succeeds and `failed_at`/`last_error` when one fails, so a job
    that runs but keeps failing (a reconcile that cannot read its target) shows as failing, not as fresh.
    `failing_since` is the first failure after the last success: how long the job has been failing.
    """

    name = models.CharField(max_length=60, unique=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def failing(self) -> bool:
        return self.failed_at is not None and (self.last_seen is None or self.failed_at > self.last_seen)
