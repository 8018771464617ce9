from __future__ import annotations

from django.urls import path

from detection import views

app_name = "detection"
urlpatterns = [
    path("", views.board, name="board"),
    path("webhooks/alertmanager/", views.alertmanager, name="alertmanager"),
    path("webhooks/grafana/", views.grafana, name="grafana"),
    path("incidents/<int:pk>/status-snapshot/", views.status_snapshot, name="status_snapshot"),
]
