from __future__ import annotations

from django.urls import path

from notify import views

app_name = "notify"
urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/bell/", views.bell, name="bell"),
    path("inbox/read/", views.mark_read, name="mark_read"),
    path("me/contact/", views.contact, name="contact"),
]
