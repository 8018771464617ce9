from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable, never editable here: these rows change only through the console's services."""

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


# Users and groups are managed by superusers only: whoever can create, promote or reset another
# account can act as a second person, and so holds both halves of the kill switch's four eyes. The
# roles hold no auth permission (console.roles); this also closes the pages to a non-superuser who
# was granted one directly.
class SuperuserOnly:
    def has_module_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return request.user.is_active and request.user.is_superuser


class ConsoleUserAdmin(SuperuserOnly, UserAdmin):  # type: ignore[misc]
    pass


class ConsoleGroupAdmin(SuperuserOnly, GroupAdmin):  # type: ignore[misc]
    pass


admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.register(User, ConsoleUserAdmin)
admin.site.register(Group, ConsoleGroupAdmin)
