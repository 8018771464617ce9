from __future__ import annotations

from django import forms

from comms.models import COMPOSABLE, TemplateKind


class ComposeForm(forms.Form):
    """What a commander fills in; the template turns it and the incident into the message."""

    kind = forms.ChoiceField(
        choices=[(k, TemplateKind(k).label) for k in COMPOSABLE],
        label="Template",
        initial=TemplateKind.UPDATE,
    )
    impact = forms.CharField(max_length=300, required=False, help_text="What is affected")
    progress = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    next_steps = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    root_cause = forms.CharField(max_length=500, required=False, label="Root cause")


class SendForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k, TemplateKind(k).label) for k in COMPOSABLE])
    title = forms.CharField(max_length=300)
    text = forms.CharField(max_length=4000, widget=forms.Textarea(attrs={"rows": 10}))
