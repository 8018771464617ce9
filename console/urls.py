from __future__ import annotations

from django.urls import path

from console import views

app_name = "console"
urlpatterns = [path("liveness/", views.liveness, name="liveness")]
