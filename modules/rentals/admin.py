"""Rentals back-office views."""

from core.admin import SecuredModelView


class DeviceView(SecuredModelView):
    permission = "devices.view"
    edit_permission = "devices.edit"
    column_list = ("serial", "model", "customer", "status")
    column_searchable_list = ("serial",)
    column_filters = ("status",)
