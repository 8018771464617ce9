from __future__ import annotations

from django.urls import path

from console import views

app_name = "console"
urlpatterns = [
    path("liveness/", views.liveness, name="liveness"),
    path("second-factor/", views.second_factor, name="second_factor"),
    path("second-factor/remove/", views.second_factor_remove, name="second_factor_remove"),
]
