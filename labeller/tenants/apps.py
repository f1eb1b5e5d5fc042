from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "labeller.tenants"
    label = "tenants"
