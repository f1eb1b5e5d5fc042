from django.db.models import QuerySet

from labeller.projects.models import Project
from labeller.tenants.access import scoped, scoped_get
from labeller.tenants.models import Organization


def project_list(*, organization: Organization) -> QuerySet[Project]:
    return scoped(Project, organization)


def project_get(*, organization: Organization, project_id: int) -> Project:
    return scoped_get(Project, organization, pk=project_id)
