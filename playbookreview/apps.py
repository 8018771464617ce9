from __future__ import annotations

from django.apps import AppConfig

from console.roles import ADMIN, EXECUTIVE, LEAD, RESPONDER, VIEWER

_VIEW = ["view_playbookproposal", "view_playbookproposalrevision"]
_PROPOSE = [*_VIEW, "add_playbookproposal"]


class PlaybookReviewConfig(AppConfig):
    """Changes to the playbook as reviewed documents: a proposal (often a post-mortem's or a drill's
    lesson) is written against the version in force, reviewed like a post-mortem
    (postmortems.review), and adopted as the next playbook version when its approver approves it."""

    name = "playbookreview"
    verbose_name = "Playbook proposals"
    # Every role reads proposals; those who run incidents and drills propose changes. Editing someone
    # else's proposal, naming reviewers and approving need the playbook keeper's permission
    # (incidents.review_playbook, leads and admins); the author edits their own (object permission).
    role_permissions = {
        VIEWER: _VIEW,
        EXECUTIVE: _VIEW,
        RESPONDER: _PROPOSE,
        LEAD: _PROPOSE,
        ADMIN: _PROPOSE,
    }
