from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import views as console_views

urlpatterns = [
    path("metrics", console_views.metrics, name="metrics"),
    path("login/", console_views.ConsoleLoginView.as_view(), name="login"),
    path("login/code/", console_views.login_code, name="login_code"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Before admin's own URLs: Django admin signs in through the console's login.
    path("admin/login/", console_views.admin_login),
    path("admin/", admin.site.urls),
    path("killswitch/", include("killswitch.urls")),
    path("detection/", include("detection.urls")),
    path("console/", include("console.urls")),
    path("", include("notify.urls")),
    path("oncall/", include("oncall.urls")),
    path("actions/", include("actions.urls")),
    path("drills/", include("drills.urls")),
    path("", include("comms.urls")),
    path("", include("postmortems.urls")),
    # Proposed changes to the playbook, beside its pages (/playbook/, /playbook/versions/).
    path("playbook/proposals/", include("playbookreview.urls")),
    path("", include("incidents.urls")),
]
