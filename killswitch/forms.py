from __future__ import annotations

from typing import Any

from django import forms

from incidents.models import Incident
from killswitch.backends import MAX_FIELD, REASONS, InvalidInput, check_field

REASON_LABELS = {
    "manual": "Manual (operator decision)",
    "circuit_breaker": "Circuit breaker",
    "risk_limit": "Risk limit breached",
    "system_error": "System error",
    "exchange_error": "Exchange error",
    "auth_failure": "Authentication failure / security",
}


class SafeText(forms.CharField):
    """Text CDB can store: no CR, LF or other control characters (they would forge file lines)."""

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        try:
            return check_field(
                str(self.label or "Text"), value or "", required=self.required, limit=MAX_FIELD
            )
        except InvalidInput as exc:
            raise forms.ValidationError(str(exc)) from exc


class IncidentField(forms.ModelChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(queryset=Incident.objects.none(), required=False, **kwargs)


class HaltForm(forms.Form):
    """What a halt needs; also the halt form used while the database is unreachable (no incidents)."""

    reason = forms.ChoiceField(choices=[(r, REASON_LABELS[r]) for r in REASONS])
    message = SafeText(max_length=MAX_FIELD, required=False, label="Message")


class ActivateForm(HaltForm):
    incident = IncidentField(label="Incident", empty_label="— none —")

    def __init__(self, *args: Any, incidents: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["incident"].queryset = incidents  # type: ignore[attr-defined]


class ResumeRequestForm(forms.Form):
    justification = SafeText(
        max_length=MAX_FIELD,
        min_length=20,
        label="Justification",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="At least 20 characters: root cause, fix, health, metrics (playbook section 7).",
    )
    incident = IncidentField(label="Incident", empty_label="— none —")

    def __init__(self, *args: Any, incidents: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["incident"].queryset = incidents  # type: ignore[attr-defined]


class ApproveForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), required=False
    )
    code = forms.CharField(max_length=8, required=False)


class RejectForm(forms.Form):
    note = SafeText(max_length=MAX_FIELD, required=False, label="Note")


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.ChoiceField(required=False)
    target = forms.CharField(required=False, max_length=40)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from killswitch.models import Action

        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "any"), *Action.choices]  # type: ignore[attr-defined]
