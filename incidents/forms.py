from __future__ import annotations

from typing import Any

from django import forms

from incidents.lifecycle import TRANSITIONS
from incidents.models import IncidentType, Severity, Status
from incidents.triage import SERVICES_DOWN_CHOICES, suggest_severity

YES_NO = [("no", "No"), ("yes", "Yes")]
USE_SUGGESTION = ""


def split_components(value: str) -> list[str]:
    return [c.strip() for c in value.replace("\n", ",").split(",") if c.strip()]


class DecisionTreeForm(forms.Form):
    losing_money = forms.ChoiceField(
        label="Is trading actively losing money?", choices=YES_NO, widget=forms.RadioSelect, required=False
    )
    services_down = forms.ChoiceField(
        label="Is any service completely down?",
        choices=SERVICES_DOWN_CHOICES,
        widget=forms.RadioSelect,
        required=False,
    )
    degraded = forms.ChoiceField(
        label="Is performance degraded?", choices=YES_NO, widget=forms.RadioSelect, required=False
    )

    def tree_answered(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return all(data.get(k) for k in ("losing_money", "services_down", "degraded"))

    def suggestion(self):  # type: ignore[no-untyped-def]
        data = self.cleaned_data
        return suggest_severity(
            losing_money=data["losing_money"] == "yes",
            services_down=data["services_down"],
            degraded=data["degraded"] == "yes",
        )


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
    affected_components = forms.CharField(
        required=False, max_length=1000, help_text="Comma-separated, e.g. cdb_risk, cdb_execution"
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=20_000)

    field_order = ["losing_money", "services_down", "degraded", "severity", "title", "incident_type"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        partial = [k for k in ("losing_money", "services_down", "degraded") if data.get(k)]
        if partial and len(partial) < 3:
            raise forms.ValidationError("Answer all three decision-tree questions, or none of them.")
        if data.get("severity") is None and not self.tree_answered():
            self.add_error("severity", "Choose a severity or answer the decision tree.")
        return data

    def decision_answers(self) -> dict[str, Any] | None:
        if not self.tree_answered():
            return None
        s = self.suggestion()
        return {
            "losing_money": self.cleaned_data["losing_money"] == "yes",
            "services_down": self.cleaned_data["services_down"],
            "degraded": self.cleaned_data["degraded"] == "yes",
            "suggested": int(s.severity),
            "activate_kill_switch": s.activate_kill_switch,
        }

    def chosen_severity(self) -> int:
        if self.cleaned_data.get("severity") is not None:
            return int(self.cleaned_data["severity"])
        return int(self.suggestion().severity)


class TransitionForm(forms.Form):
    to_status = forms.ChoiceField(choices=Status.choices)
    from_status = forms.ChoiceField(choices=Status.choices, required=False)
    override_reason = forms.CharField(required=False, max_length=500)


class SeverityForm(forms.Form):
    severity = forms.TypedChoiceField(choices=Severity.choices, coerce=int)
    reason = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"placeholder": "Why the change?"}))


class CommanderForm(forms.Form):
    commander: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None,  # type: ignore[arg-type]
        empty_label="— choose —",
    )

    def __init__(self, *args: Any, candidates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["commander"].queryset = candidates  # type: ignore[attr-defined]


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
    q = forms.CharField(required=False, max_length=200, label="Search closed incidents")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = list(IncidentType.objects.values_list("slug", "name"))  # type: ignore[attr-defined]
