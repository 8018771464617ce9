from __future__ import annotations

from django.urls import path

from incidents import playbook_views, views

app_name = "incidents"
urlpatterns = [
    path("", views.home, name="home"),
    path("incidents/declare/", views.declare, name="declare"),
    path("incidents/declare/suggest/", views.declare_suggest, name="declare_suggest"),
    path("incidents/<int:pk>/", views.detail, name="detail"),
    path("incidents/<int:pk>/poll/", views.poll, name="poll"),
    path("incidents/<int:pk>/timeline/", views.timeline, name="timeline"),
    path("incidents/<int:pk>/edit/", views.edit, name="edit"),
    path("incidents/<int:pk>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("incidents/<int:pk>/transition/", views.transition, name="transition"),
    path("incidents/<int:pk>/severity/", views.change_severity, name="severity"),
    path("incidents/<int:pk>/commander/", views.assign_commander, name="commander"),
    path("incidents/<int:pk>/type/", views.change_type, name="type"),
    path("incidents/<int:pk>/note/", views.add_note, name="note"),
    path("incidents/<int:pk>/checklist/", views.checklist_item, name="checklist"),
    path("incidents/<int:pk>/facts/", views.facts, name="facts"),
    path("playbook/", playbook_views.current, name="playbook"),
    path("playbook/review/", playbook_views.review, name="playbook_review"),
    path("playbook/versions/", playbook_views.versions, name="playbook_versions"),
    path("playbook/versions/<int:number>/", playbook_views.version, name="playbook_version"),
    path("playbook/versions/<int:number>/yaml/", playbook_views.version_yaml, name="playbook_version_yaml"),
    path("playbook/versions/<int:a>/diff/<int:b>/", playbook_views.diff, name="playbook_diff"),
]
