from __future__ import annotations

from typing import Any

from django import forms

from actions.models import ItemStatus, Origin, validate_tracker_url
from actions.selectors import owner_choices


class ActionItemForm(forms.Form):
    title = forms.CharField(max_length=300)
    owner = forms.ModelChoiceField(queryset=owner_choices(), required=False, empty_label="(nobody yet)")
    due = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    tracker_url = forms.URLField(
        required=False, max_length=500, validators=[validate_tracker_url], assume_scheme="https"
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        owner.queryset = owner_choices()  # read per form: people join and leave


class CreateForm(ActionItemForm):
    origin = forms.ChoiceField(choices=Origin.choices, required=False)

    def clean_origin(self) -> str:
        return self.cleaned_data.get("origin") or Origin.INCIDENT


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=ItemStatus.choices)


class FilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("active", "Open and in progress"), *ItemStatus.choices, ("all", "All")], required=False
    )
    owner = forms.ModelChoiceField(queryset=owner_choices(), required=False, empty_label="(anyone)")
    overdue = forms.BooleanField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        owner.queryset = owner_choices()
