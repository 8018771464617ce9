"""The published post-mortem as Markdown in the playbook's template layout, with its Action Items
table (from the incident's action items, the actions app) and the approval table (from the review's
sign-offs)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import timezone

from actions.selectors import action_items_for_incident
from postmortems import prefill, review
from postmortems.models import PostMortem, PostMortemRevision

sections_in = prefill.sections_in


def action_items(pm: PostMortem) -> list[Any]:
    """The incident's action items (those added from the incident page, the post-mortem or a drill
    review): the post-mortem's Action Items section."""
    return action_items_for_incident(pm.incident)


def action_items_context(pm: PostMortem) -> dict[str, Any]:
    return {
        "incident": pm.incident,
        "items": action_items(pm),
        "origin": "postmortem",
        "next": reverse("postmortems:detail", args=[pm.pk]),
    }


def _cell(value: Any) -> str:
    return " ".join(str(value or "").split()).replace("|", "\\|")


def action_items_table(pm: PostMortem) -> str:
    items = action_items(pm)
    rows = ["| Action | Owner | Deadline | Issue |", "|--------|-------|----------|-------|"]
    for item in items:
        owner = f"@{item.owner.get_username()}" if getattr(item, "owner", None) else ""
        due = f"{item.due:%Y-%m-%d}" if getattr(item, "due", None) else ""
        status = item.get_status_display() if hasattr(item, "get_status_display") else ""
        title = f"{item.title} ({status})" if status else item.title
        rows.append(
            f"| {_cell(title)} | {_cell(owner)} | {due} | {_cell(getattr(item, 'tracker_url', ''))} |"
        )
    return "\n".join(rows)


def approval_table(pm: PostMortem) -> str:
    rows = ["| Role | Name | Date | Signature |", "|------|------|------|-----------|"]
    people = [("Author", "author", pm.author)]
    people += [("Reviewer", "reviewer", u) for u in review.reviewers_of(pm)] or [
        ("Reviewer", "reviewer", None)
    ]
    people.append(("Approver", "approver", pm.approver))
    all_signed = review.signoffs_of(pm)
    for label, role, user in people:
        sign = next(
            (s for s in all_signed if s.role == role and user is not None and s.user_id == user.pk), None
        )
        name = user.get_username() if user else "[TBD]"
        date = f"{timezone.localtime(sign.signed_at):%Y-%m-%d}" if sign else ""
        rows.append(f"| {label} | {_cell(name)} | {date} | {'✅ r' + str(sign.revision) if sign else ''} |")
    return "\n".join(rows)


def _replace_section(text: str, name: str, content: str) -> str:
    """Swap the body of `## name` (up to the next `## `) for `content`."""
    lines = text.splitlines()
    out: list[str] = []
    skipping = False
    for line in lines:
        if line.startswith("## "):
            if skipping:
                skipping = False
            if line[3:].strip().lower() == name.lower():
                out += [line, content, ""]
                skipping = True
                continue
        if not skipping:
            out.append(line)
    return "\n".join(out)


def markdown_of(pm: PostMortem, *, number: int | None = None) -> str:
    number = number or pm.published_revision or pm.current_revision
    body = PostMortemRevision.objects.get(postmortem=pm, number=number).body.rstrip()
    body = _replace_section(body, "Action Items", action_items_table(pm)).rstrip()
    return f"{body}\n\n## Approval\n\n{approval_table(pm)}\n"


def section_text(body: str, name: str) -> str:
    """The text of the `## name` section of a document (case-insensitive), without its heading."""
    taking, lines = False, []
    for line in body.splitlines():
        if line.startswith("## "):
            taking = line[3:].strip().lower() == name.lower()
            continue
        if taking:
            lines.append(line)
    return "\n".join(lines).strip()


def summary_of(pm: PostMortem) -> str:
    """The Summary section of the published revision (the stakeholders' message)."""
    number = pm.published_revision or pm.current_revision
    return section_text(PostMortemRevision.objects.get(postmortem=pm, number=number).body, "Summary")
