from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console.views import metrics

urlpatterns = [
    path("metrics", metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("killswitch/", include("killswitch.urls")),
    path("detection/", include("detection.urls")),
    path("console/", include("console.urls")),
    path("", include("incidents.urls")),
]
