from __future__ import annotations

from typing import Any

from django import forms

from incidents.lifecycle import TRANSITIONS
from incidents.models import IncidentType, Severity, SeverityLevel, Status
from incidents.services import UNSEEN, Unseen
from incidents.triage import (
    QUESTIONS,
    SERVICES_DOWN_CHOICES,
    Suggestion,
    Walk,
    below_suggestion_message,
    walk,
)

YES_NO = [("no", "No"), ("yes", "Yes")]
USE_SUGGESTION = ""


def split_components(value: str) -> list[str]:
    return [c.strip() for c in value.replace("\n", ",").split(",") if c.strip()]


class DecisionTreeForm(forms.Form):
    losing_money = forms.ChoiceField(
        label=QUESTIONS["losing_money"], choices=YES_NO, widget=forms.RadioSelect, required=False
    )
    services_down = forms.ChoiceField(
        label=QUESTIONS["services_down"],
        choices=SERVICES_DOWN_CHOICES,
        widget=forms.RadioSelect,
        required=False,
    )
    degraded = forms.ChoiceField(
        label=QUESTIONS["degraded"], choices=YES_NO, widget=forms.RadioSelect, required=False
    )

    def walk(self) -> Walk:
        """How far the answers take the tree (no answers yet on an unbound or invalid form)."""
        return walk(getattr(self, "cleaned_data", None) or {})

    def tree_started(self) -> bool:
        data = getattr(self, "cleaned_data", None) or {}
        return any(data.get(name) for name in QUESTIONS)

    def suggestion(self) -> Suggestion | None:
        return self.walk().suggestion

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tree = walk(data)
        if any(data.get(name) for name in QUESTIONS) and tree.suggestion is None:
            raise forms.ValidationError(f"Finish the decision tree (next: {tree.next_question}) or clear it.")
        return data


class DeclareForm(DecisionTreeForm):
    title = forms.CharField(max_length=200)
    incident_type = forms.ModelChoiceField(
        queryset=IncidentType.objects.all(), empty_label=None, label="Type"
    )
    severity = forms.TypedChoiceField(
        choices=[(USE_SUGGESTION, "Use the decision tree's suggestion"), *Severity.choices],
        coerce=int,
        empty_value=None,
        required=False,
    )
    severity_reason = forms.CharField(
        label="Why lower than the suggestion?",
        required=False,
        max_length=500,
        help_text="Needed only when you choose a lower severity than the decision tree suggests.",
    )
    affected_components = forms.CharField(
        required=False, max_length=1000, help_text="Comma-separated, e.g. cdb_risk, cdb_execution"
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=20_000)

    field_order = ["losing_money", "services_down", "degraded", "severity", "title", "incident_type"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        suggestion = walk(data).suggestion
        chosen = data.get("severity")
        if chosen is None and suggestion is None:
            self.add_error("severity", "Choose a severity or answer the decision tree.")
        elif (
            chosen is not None
            and suggestion is not None
            and chosen > suggestion.severity
            and not (data.get("severity_reason") or "").strip()
        ):
            self.add_error("severity_reason", below_suggestion_message(chosen, suggestion.severity))
        return data

    def decision_answers(self) -> dict[str, Any] | None:
        """The tree's answers as the incident records them, or None when it was not used."""
        tree = self.walk()
        if tree.suggestion is None:
            return None
        suggested = tree.suggestion.severity
        return {
            **tree.answers(self.cleaned_data),
            "suggested": int(suggested),
            "activate_kill_switch": tree.suggestion.tree_halts
            or SeverityLevel.for_level(suggested).kill_switch_default,
        }

    def chosen_severity(self) -> int:
        if self.cleaned_data.get("severity") is not None:
            return int(self.cleaned_data["severity"])
        suggestion = self.suggestion()
        assert suggestion is not None  # clean() requires one or the other
        return int(suggestion.severity)


class TransitionForm(forms.Form):
    to_status = forms.ChoiceField(choices=Status.choices)
    from_status = forms.ChoiceField(choices=Status.choices, required=False)
    override_reason = forms.CharField(required=False, max_length=500)


class SeverityForm(forms.Form):
    severity = forms.TypedChoiceField(choices=Severity.choices, coerce=int)
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"placeholder": "Why the change?"}))
    # What the person saw (a hidden input): a change decided on a stale page is refused.
    from_severity = forms.TypedChoiceField(
        choices=Severity.choices, coerce=int, empty_value=None, required=False, widget=forms.HiddenInput
    )


class CommanderForm(forms.Form):
    commander: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None,  # type: ignore[arg-type]
        empty_label="— choose —",
    )
    from_commander = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, candidates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["commander"].queryset = candidates  # type: ignore[attr-defined]

    def clean_from_commander(self) -> int | Unseen | None:
        """The commander's id the page showed, None for "none yet"; UNSEEN if the form was not sent
        by the page (nothing to compare with)."""
        if "from_commander" not in self.data:
            return UNSEEN
        value = self.cleaned_data["from_commander"].strip()
        if not value:
            return None
        if not value.isdigit():
            raise forms.ValidationError("Reload the page: the form is damaged.")
        return int(value)


class TypeForm(forms.Form):
    incident_type = forms.ModelChoiceField(
        queryset=IncidentType.objects.all(), empty_label=None, label="Incident type"
    )
    from_type = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)


class NoteForm(forms.Form):
    text = forms.CharField(
        label="Add a note",
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "What did you find or do?"}),
    )


class ChecklistItemForm(forms.Form):
    item = forms.IntegerField(min_value=1)
    done = forms.TypedChoiceField(choices=[("1", "done"), ("0", "open")], coerce=lambda v: v == "1")


class EditForm(forms.Form):
    title = forms.CharField(max_length=200)
    affected_components = forms.CharField(required=False, max_length=1000)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=20_000)
    war_room_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", label="War room (video call link)"
    )
    # The values the form showed (hidden): only what the person changed is written, and a field
    # someone else changed meanwhile is refused instead of overwritten.
    seen_title = forms.CharField(required=False, max_length=200, widget=forms.HiddenInput)
    seen_affected_components = forms.CharField(required=False, max_length=1000, widget=forms.HiddenInput)
    seen_description = forms.CharField(required=False, max_length=20_000, widget=forms.HiddenInput)
    seen_war_room_url = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)

    def seen(self) -> dict[str, Any] | None:
        if "seen_title" not in self.data:
            return None
        return {
            "title": self.cleaned_data["seen_title"],
            "description": self.cleaned_data["seen_description"],
            "affected_components": split_components(self.cleaned_data["seen_affected_components"]),
            "war_room_url": self.cleaned_data["seen_war_room_url"],
        }


class FilterForm(forms.Form):
    severity = forms.TypedMultipleChoiceField(
        choices=Severity.choices, coerce=int, required=False, widget=forms.CheckboxSelectMultiple
    )
    status = forms.MultipleChoiceField(
        choices=[(s, Status(s).label) for s in TRANSITIONS if s not in (Status.RESOLVED, Status.CLOSED)],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    type = forms.MultipleChoiceField(choices=[], required=False, widget=forms.CheckboxSelectMultiple)
    mine = forms.BooleanField(required=False)
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Title, description or INC-42"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = list(IncidentType.objects.values_list("slug", "name"))  # type: ignore[attr-defined]
