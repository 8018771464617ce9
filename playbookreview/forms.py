from __future__ import annotations

from django import forms

from playbookreview.services import MAX_REASON, MAX_YAML


class ProposalForm(forms.Form):
    """A proposal's text. The YAML is kept exactly as typed (not stripped), so that a refused save
    gives the person back what they wrote."""

    title = forms.CharField(max_length=200)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        max_length=MAX_REASON,
        help_text="Why the playbook should change: the lesson of a post-mortem or a drill, or what you saw.",
    )
    yaml = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 30, "class": "wide mono", "spellcheck": "false"}),
        strip=False,
        max_length=MAX_YAML,
        label="The playbook as proposed (YAML)",
    )
    note = forms.CharField(max_length=200, required=False, label="Note (what changed in this revision)")
    base = forms.IntegerField(widget=forms.HiddenInput, required=False)
    postmortem = forms.IntegerField(widget=forms.HiddenInput, required=False)
    drill = forms.IntegerField(widget=forms.HiddenInput, required=False)
