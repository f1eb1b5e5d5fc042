from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from labeller.api.base import OrganizationAPIView
from labeller.tenants import services, tokens
from labeller.tenants.access import scoped
from labeller.tenants.models import Membership, Role
from labeller.tenants.serializers import (
    ApiTokenSerializer,
    ApiTokenStatusSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    OrganizationSerializer,
)


class MeApi(APIView):
    """The caller and their organisations. Not tenant-scoped: it lists only the caller's own."""

    @extend_schema(responses=OrganizationSerializer(many=True))
    def get(self, request):
        memberships = Membership.objects.filter(user=request.user).select_related("organization")
        roles = {m.organization_id: m.role for m in memberships}
        organizations = [m.organization for m in memberships]
        return Response(
            {
                "username": request.user.username,
                "organizations": OrganizationSerializer(organizations, many=True, context={"roles": roles}).data,
            }
        )


class TokenApi(APIView):
    """The caller's token for scripts (Authorization: Token <key>).

    POST returns the live token, issuing a new one when there is none or it has expired;
    GET says whether one is live (without the key); DELETE revokes it.
    """

    @extend_schema(responses={200: ApiTokenStatusSerializer, 404: None})
    def get(self, request):
        token = tokens.api_token_get(user=request.user)
        if token is None:
            return Response({"detail": "No live token."}, status=status.HTTP_404_NOT_FOUND)
        return Response(ApiTokenStatusSerializer(token).data)

    @extend_schema(request=None, responses={200: ApiTokenSerializer})
    def post(self, request):
        return Response(ApiTokenSerializer(tokens.api_token_issue(user=request.user)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        tokens.api_token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganizationDetailApi(OrganizationAPIView):
    @extend_schema(responses=OrganizationSerializer)
    def get(self, request, org):
        context = {"roles": {self.organization.pk: self.membership.role}}
        return Response(OrganizationSerializer(self.organization, context=context).data)


class MemberListApi(OrganizationAPIView):
    @extend_schema(responses=MembershipSerializer(many=True))
    def get(self, request, org):
        return self.paginated(scoped(Membership, self.organization).select_related("user"), MembershipSerializer)

    @extend_schema(request=MembershipCreateSerializer, responses=MembershipSerializer)
    def post(self, request, org):
        data = self.validated(MembershipCreateSerializer)
        membership = services.membership_add(organization=self.organization, username=data["username"], role=Role(data["role"]))
        return self.respond(membership, MembershipSerializer, status.HTTP_201_CREATED)


class MemberDetailApi(OrganizationAPIView):
    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def patch(self, request, org, pk):
        data = self.validated(MembershipUpdateSerializer)
        membership = services.membership_update(organization=self.organization, membership_id=pk, role=Role(data["role"]))
        return self.respond(membership, MembershipSerializer)

    @extend_schema(responses={204: None})
    def delete(self, request, org, pk):
        services.membership_remove(organization=self.organization, membership_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
