from __future__ import annotations

from django.urls import path

from postmortems import views

app_name = "postmortems"
urlpatterns = [
    path("postmortems/", views.postmortem_list, name="list"),
    path("postmortems/<int:pk>/", views.postmortem_detail, name="detail"),
    path("postmortems/<int:pk>/edit/", views.postmortem_edit, name="edit"),
    path("postmortems/<int:pk>/autosave/", views.postmortem_autosave, name="autosave"),
    path("postmortems/<int:pk>/preview/", views.postmortem_preview, name="preview"),
    path("postmortems/<int:pk>/history/", views.postmortem_history, name="history"),
    path("postmortems/<int:pk>/impact/", views.postmortem_impact, name="impact"),
    path("postmortems/<int:pk>/assign/", views.postmortem_assign, name="assign"),
    path("postmortems/<int:pk>/submit/", views.postmortem_submit, name="submit"),
    path("postmortems/<int:pk>/signoff/", views.postmortem_signoff, name="signoff"),
    path("postmortems/<int:pk>/approve/", views.postmortem_approve, name="approve"),
    path("postmortems/<int:pk>/publish/", views.postmortem_publish, name="publish"),
    path("postmortems/<int:pk>/comments/", views.comment_add, name="comment"),
    path(
        "postmortems/<int:pk>/comments/<int:comment_id>/resolve/",
        views.comment_resolve,
        name="comment_resolve",
    ),
    path("postmortems/<int:pk>/export.md", views.postmortem_export, name="export"),
    path("postmortems/<int:pk>/summary/", views.postmortem_send_summary, name="summary"),
    path("incidents/<int:pk>/postmortem/", views.postmortem_request, name="request"),
]
