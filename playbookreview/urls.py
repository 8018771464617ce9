from __future__ import annotations

from django.urls import path

from playbookreview import views

app_name = "playbookreview"
urlpatterns = [
    path("", views.proposal_list, name="list"),
    path("new/", views.proposal_new, name="new"),
    path("<int:pk>/", views.proposal_detail, name="detail"),
    path("<int:pk>/edit/", views.proposal_edit, name="edit"),
    path("<int:pk>/history/", views.proposal_history, name="history"),
    path("<int:pk>/assign/", views.proposal_assign, name="assign"),
    path("<int:pk>/submit/", views.proposal_submit, name="submit"),
    path("<int:pk>/signoff/", views.proposal_signoff, name="signoff"),
    path("<int:pk>/approve/", views.proposal_approve, name="approve"),
    path("<int:pk>/rebase/", views.proposal_rebase, name="rebase"),
    path("<int:pk>/comments/", views.comment_add, name="comment"),
    path("<int:pk>/comments/<int:comment_id>/resolve/", views.comment_resolve, name="comment_resolve"),
]
