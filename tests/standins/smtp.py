"""A real SMTP server (aiosmtpd) standing in for the mail relay, for the tests: it keeps every
message it accepts, parsed."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    _arrived: threading.Condition = field(default_factory=threading.Condition)
    _controller: Controller | None = None
    port: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._arrived:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self._arrived.notify_all()
        return "250 Message accepted"

    def start(self) -> Self:
        self.port = _free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def apprise_url(self, sender: str = "console@cdb.example") -> str:
        """An Apprise mailto URL for this server (plain SMTP, no login): NOTIFY_EMAIL_URL."""
        return f"mailto://127.0.0.1:{self.port}?from={sender}&mode=insecure"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"mailbox got {len(self.messages)} messages, expected {count}")
            return list(self.messages)
