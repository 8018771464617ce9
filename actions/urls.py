from __future__ import annotations

from django.urls import path

from actions import views

app_name = "actions"
urlpatterns = [
    path("", views.index, name="index"),
    path("mine/", views.mine, name="mine"),
    path("incidents/<int:pk>/add/", views.create, name="create"),
    path("<int:pk>/edit/", views.edit, name="edit"),
    path("<int:pk>/status/", views.status, name="status"),
]
