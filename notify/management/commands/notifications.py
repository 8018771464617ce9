"""Notification channels from the command line: list them, or send a test message through one."""

from __future__ import annotations

import getpass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from notify import services
from notify.models import Channel, MessageState


class Command(BaseCommand):
    help = "Notification channels: list | test NAME"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="Every channel, from the environment and the database.")
        test = sub.add_parser("test", help="Send a test message to a channel and say whether it arrived.")
        test.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            for name in sorted(settings.NOTIFY_CHANNELS):
                self.stdout.write(f"{name:<20} environment")
            for channel in Channel.objects.exclude(name__in=settings.NOTIFY_CHANNELS):
                self.stdout.write(f"{channel.name:<20} database{'' if channel.enabled else ' (disabled)'}")
            return
        message = services.channel_test(name=options["name"], actor=f"{getpass.getuser()} (command line)")
        if message.state != MessageState.SENT:
            raise CommandError(f"{options['name']}: not delivered: {message.last_error}")
        self.stdout.write(f"{options['name']}: test message delivered.")
