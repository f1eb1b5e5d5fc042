from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("o/<slug:org_slug>/p/<int:project_id>/", views.project, name="project"),
    path("o/<slug:org_slug>/p/<int:project_id>/label/", views.workspace, name="workspace"),
    path("", views.home, name="home"),
]
