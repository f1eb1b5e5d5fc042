from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    # Django's password reset, mailed through the configured EMAIL_BACKEND.
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="frontend/password_reset_form.html",
            email_template_name="frontend/password_reset_email.txt",
            subject_template_name="frontend/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="frontend/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(template_name="frontend/password_reset_confirm.html"),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="frontend/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("o/<slug:org_slug>/p/<int:project_id>/", views.project, name="project"),
    path("o/<slug:org_slug>/p/<int:project_id>/label/", views.workspace, name="workspace"),
    path("o/<slug:org_slug>/p/<int:project_id>/models/", views.models, name="models"),
    path("o/<slug:org_slug>/members/", views.members, name="members"),
    path("invite/<str:token>/", views.invitation, name="invitation"),
    path("", views.home, name="home"),
]
