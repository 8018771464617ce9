"""`seed_demo` brings one playbook proposal in review, once, that its demo approver can adopt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from incidents.management.commands import seed_demo
from incidents.playbook import current_version, parse_playbook_yaml
from playbookreview import services
from playbookreview.merge import changed_sections
from playbookreview.models import PlaybookProposal
from postmortems import review

pytestmark = pytest.mark.django_db


def test_the_demo_has_one_playbook_proposal_in_review(settings, monkeypatch, tmp_path: Path, ks_files: Any):
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo-credentials.txt")
    settings.DEBUG = True
    call_command("seed_demo", "--no-incidents")
    call_command("seed_demo", "--no-incidents")  # a second run adds nothing
    [p] = PlaybookProposal.objects.all()
    assert p.author is not None and p.approver is not None and p.drill is not None
    assert (p.status, p.author.username, p.approver.username) == ("in_review", "demo-responder", "demo-lead")
    assert [u.username for u in review.reviewers_of(p)] == ["demo-admin"]
    assert "second approver" in p.reason
    assert changed_sections(p.base_version.document, parse_playbook_yaml(p.yaml)) == ["incident_types"]
    services.proposal_approve(proposal=p, actor=User.objects.get(username="demo-lead"))
    version = current_version()
    assert version is not None and (version.number, version.source) == (2, f"proposal:{p.pk}")
