from __future__ import annotations

from django import forms

_PASSWORD = forms.PasswordInput(attrs={"autocomplete": "current-password"})
_CODE = forms.TextInput(
    attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*", "maxlength": 8}
)


class CodeForm(forms.Form):
    code = forms.CharField(label="Code from your authenticator app", max_length=8, widget=_CODE)


class EnrolForm(forms.Form):
    code = forms.CharField(label="Code the app shows now", max_length=8, widget=_CODE)
    password = forms.CharField(label="Your password", widget=_PASSWORD)


class RemoveForm(forms.Form):
    password = forms.CharField(label="Your password", widget=_PASSWORD)
    code = forms.CharField(label="Code from your authenticator app", max_length=8, widget=_CODE)
