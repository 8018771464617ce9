from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse

from console.admin import ReadOnlyAdmin
from notify import delivery, services
from notify.models import Channel, Message, MessageState


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ["name", "url", "enabled", "description"]
        widgets = {"url": forms.TextInput(attrs={"size": 90, "autocomplete": "off"})}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"].strip()
        if not delivery.valid_url(url):
            raise forms.ValidationError(
                "Apprise does not know this URL; see its documentation for the service."
            )
        return url


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "enabled", "description"]
    actions = ["send_test"]
    change_form_template = "admin/notify/channel/change_form.html"

    def get_urls(self) -> list[Any]:
        urls = super().get_urls()
        test = path(
            "<int:pk>/send-test/",
            self.admin_site.admin_view(self.send_test_view),
            name="notify_channel_send_test",
        )
        return [test, *urls]

    def send_test_view(self, request: HttpRequest, pk: int) -> HttpResponseRedirect:
        channel = Channel.objects.get(pk=pk)
        if request.method == "POST" and self.has_change_permission(request, channel):
            self._test(request, channel)
        return HttpResponseRedirect(reverse("admin:notify_channel_change", args=[pk]))

    @admin.action(description="Send a test message", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: Any) -> None:
        for channel in queryset:
            self._test(request, channel)

    def _test(self, request: HttpRequest, channel: Channel) -> None:
        message = services.channel_test(name=channel.name, actor=request.user.get_username())
        if message.state == MessageState.SENT:
            self.message_user(
                request, f"Channel {channel.name}: the test message was delivered.", messages.SUCCESS
            )
        else:
            self.message_user(
                request,
                f"Channel {channel.name}: the test message was not delivered: {message.last_error}",
                messages.ERROR,
            )


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "kind", "address_kind", "address", "incident_id", "state", "attempts"]
    list_filter = ["state", "kind", "address_kind"]
    search_fields = ["title", "address"]
    exclude = ["body"]
    readonly_fields = ["body_text"]

    @admin.display(description="Body")
    def body_text(self, obj: Message) -> str:
        return obj.body
