from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@login_required
def home(request):
    """The project picker; everything it shows is loaded from the API by the page itself."""
    return render(request, "frontend/home.html")


@login_required
@ensure_csrf_cookie  # uploads and label changes are API writes that need the token
def project(request, org_slug: str, project_id: int):
    """A project's videos, images and labels. The page loads them from the API, which checks access and roles."""
    return render(request, "frontend/project.html", {"org_slug": org_slug, "project_id": project_id})


@login_required
@ensure_csrf_cookie  # Retrain, cancel and promote are API writes
def models(request, org_slug: str, project_id: int):
    """Admins: the project's model versions, their per-label scores, retraining. The API checks the role."""
    return render(request, "frontend/models.html", {"org_slug": org_slug, "project_id": project_id})


@login_required
@ensure_csrf_cookie  # every save from the workspace is an API write that needs the token
def workspace(request, org_slug: str, project_id: int):
    """The annotator's workspace. Access to the project is checked by the API calls the page makes."""
    return render(request, "frontend/workspace.html", {"org_slug": org_slug, "project_id": project_id})


@login_required
@ensure_csrf_cookie  # issuing and revoking the token are API writes
def account(request):
    """The caller's script token: shown, issued and revoked by the page through the API."""
    return render(request, "frontend/account.html", {"token_lifetime_days": settings.API_TOKEN_LIFETIME.days})


@login_required
@ensure_csrf_cookie  # invitations, new accounts and role changes are API writes
def members(request, org_slug: str):
    """Admins: the organisation's members, invitations and activity. The API checks the role."""
    days = settings.INVITATION_LIFETIME.days
    return render(request, "frontend/members.html", {"org_slug": org_slug, "invitation_days": days})


@ensure_csrf_cookie  # accepting, or creating an account through the link, is an API write
def invitation(request, token: str):
    """An invitation link: open to anyone holding it; the page asks the API what it offers."""
    return render(request, "frontend/invitation.html", {"token": token})
