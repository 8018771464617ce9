from __future__ import annotations

from django import forms

from notify import delivery
from notify.models import ContactPoints


class ContactPointsForm(forms.ModelForm):
    class Meta:
        model = ContactPoints
        fields = ["email", "chat_handle", "webhook_url"]
        widgets = {"webhook_url": forms.TextInput(attrs={"autocomplete": "off"})}

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"].strip()
        if url and not delivery.valid_url(url):
            raise forms.ValidationError(
                "Not a notification URL Apprise knows (e.g. json://host/path, ntfy://topic)."
            )
        return url

    def clean_chat_handle(self) -> str:
        return self.cleaned_data["chat_handle"].strip()


class MarkReadForm(forms.Form):
    item = forms.IntegerField(required=False, min_value=1)
