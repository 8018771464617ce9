from __future__ import annotations

from django.urls import path

from drills import views

app_name = "drills"
urlpatterns = [
    path("", views.index, name="index"),
    path("calendar/", views.calendar_page, name="calendar"),
    path("calendar/feed/", views.feed_link, name="feed_link"),
    path("calendars/<str:token>.ics", views.ics_feed, name="ics"),
    path("new/", views.drill_new, name="new"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/move/", views.move, name="move"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/start/", views.start, name="start"),
    path("<int:pk>/review/", views.review, name="review"),
]
