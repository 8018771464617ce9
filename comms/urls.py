from __future__ import annotations

from django.urls import path

from comms import views

app_name = "comms"
urlpatterns = [
    path("incidents/<int:pk>/compose/preview/", views.preview, name="preview"),
    path("incidents/<int:pk>/compose/send/", views.send, name="send"),
]
