from __future__ import annotations

from django import forms

from drills.models import DrillType

LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class DrillForm(forms.Form):
    drill_type = forms.ModelChoiceField(queryset=DrillType.objects.filter(enabled=True), label="Drill type")
    scheduled_for = forms.DateTimeField(widget=LOCAL, label="When")


class MoveForm(forms.Form):
    scheduled_for = forms.DateTimeField(widget=LOCAL, label="Move to")


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)


class ReviewForm(forms.Form):
    findings = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False)
    playbook_proposal = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, label="Proposed playbook changes"
    )
    playbook_proposal_url = forms.URLField(required=False, label="Link to the proposed revision")
    complete = forms.BooleanField(required=False, label="Mark the drill completed")
