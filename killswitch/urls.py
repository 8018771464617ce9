from __future__ import annotations

from django.urls import path

from killswitch import views

app_name = "killswitch"
urlpatterns = [
    path("", views.index, name="index"),
    path("banner/", views.banner, name="banner"),
    path("audit/", views.audit, name="audit"),
    path("<slug:target>/activate/", views.activate, name="activate"),
    path("<slug:target>/resume/", views.request_resume, name="request_resume"),
    path("requests/<int:pk>/approve/", views.approve, name="approve"),
    path("requests/<int:pk>/reject/", views.reject, name="reject"),
]
