from __future__ import annotations

import zoneinfo
from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from oncall.models import Duty, Rotation

WEEKDAYS = [
    ("", "— the effective date —"),
    *[
        (str(i), d)
        for i, d in enumerate(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
    ],
]


class RotationForm(forms.Form):
    name = forms.CharField(max_length=80)
    duty = forms.ChoiceField(choices=Duty.choices)
    time_zone = forms.ChoiceField(choices=[])
    effective_from = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    handoff_time = forms.TimeField(widget=forms.TimeInput(attrs={"type": "time"}))
    handoff_weekday = forms.TypedChoiceField(
        choices=WEEKDAYS, required=False, coerce=int, empty_value=None, label="Handoff weekday"
    )
    shift_hours = forms.IntegerField(min_value=1, max_value=24 * 28, help_text="168 weekly, 24 daily, 12 …")
    members = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        required=False,
        help_text="Usernames in order, one per line: the first takes the first shift.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, instance: Rotation | None = None, **kwargs: Any) -> None:
        self.instance = instance
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = [(z, z) for z in sorted(zoneinfo.available_timezones())]  # type: ignore[attr-defined]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Rotation.objects.filter(name=name)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("Another rotation has this name.")
        return name

    def clean_members(self) -> list[Any]:
        names = [line.strip() for line in self.cleaned_data["members"].splitlines() if line.strip()]
        users = get_user_model().objects.in_bulk(names, field_name="username")
        unknown = [n for n in names if n not in users]
        if unknown:
            raise forms.ValidationError(f"No such user: {', '.join(unknown)}.")
        return [users[n] for n in names]


class OverrideForm(forms.Form):
    rotation = forms.ModelChoiceField(queryset=Rotation.objects.filter(enabled=True))
    user = forms.ModelChoiceField(queryset=get_user_model().objects.none(), label="Who covers")
    replaces = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        label="Covering for",
        help_text="Empty: whoever would be on call.",
    )
    starts_at = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="From"
    )
    ends_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Until")
    reason = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, candidates: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = candidates  # type: ignore[attr-defined]
        self.fields["replaces"].queryset = candidates  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("starts_at") and data.get("ends_at") and data["ends_at"] <= data["starts_at"]:
            self.add_error("ends_at", "Must be after the start.")
        return data


class FeedForm(forms.Form):
    rotation = forms.ModelChoiceField(
        queryset=Rotation.objects.all(), required=False, empty_label="— my own shifts —"
    )
