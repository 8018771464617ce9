from __future__ import annotations

from django.urls import path

from oncall import views

app_name = "oncall"
urlpatterns = [
    path("", views.index, name="index"),
    path("rotations/new/", views.rotation_edit, name="rotation_new"),
    path("rotations/<int:pk>/", views.rotation_edit, name="rotation_edit"),
    path("overrides/new/", views.override_new, name="override_new"),
    path("overrides/<int:pk>/delete/", views.override_delete, name="override_delete"),
    path("calendars/", views.feeds, name="feeds"),
    path("calendars/<int:pk>/revoke/", views.feed_revoke, name="feed_revoke"),
    path("calendars/<str:token>.ics", views.ics_feed, name="ics"),
]
