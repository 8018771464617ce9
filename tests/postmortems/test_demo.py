from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from incidents.management.commands import seed_demo
from postmortems import review
from postmortems.models import PostMortem

pytestmark = pytest.mark.django_db


def test_the_demo_has_a_postmortem_in_review(settings, monkeypatch, tmp_path: Path, ks_files: Any):
    monkeypatch.setattr(seed_demo, "CREDENTIALS_FILE", tmp_path / "demo-credentials.txt")
    settings.DEBUG = True
    call_command("seed_demo")
    [pm] = PostMortem.objects.all()
    assert pm.author is not None and pm.approver is not None
    assert (pm.status, pm.current_revision, pm.author.username) == ("in_review", 2, "demo-responder")
    assert pm.approver.username == "demo-lead"
    assert [u.username for u in review.reviewers_of(pm)] == ["demo-executive"]
