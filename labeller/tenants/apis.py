from django.contrib.auth import login
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from labeller.api.base import OrganizationAPIView
from labeller.tenants import invitations, selectors, services, tokens
from labeller.tenants.models import Membership, Role
from labeller.tenants.serializers import (
    ActivityWindowSerializer,
    ApiTokenSerializer,
    ApiTokenStatusSerializer,
    InvitationAcceptSerializer,
    InvitationCreateSerializer,
    InvitationPreviewSerializer,
    InvitationSerializer,
    IssuedInvitationSerializer,
    MemberAccountCreateSerializer,
    MemberActivitySerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    OrganizationSerializer,
)

LAST_ADMIN = OpenApiResponse(description="The organisation's last admin cannot be demoted, deactivated or removed.")
UNKNOWN_LINK = OpenApiResponse(description="No invitation has this link.")
USED_LINK = OpenApiResponse(description="The invitation was already used, withdrawn, or has expired.")


class MeApi(APIView):
    """The caller and their organisations. Not tenant-scoped: it lists only the caller's own."""

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {"username": serializers.CharField(), "organizations": OrganizationSerializer(many=True)},
        )
    )
    def get(self, request):
        memberships = Membership.objects.filter(user=request.user, is_active=True).select_related("organization")
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
    """Admins: the organisation's members (active or not), and new accounts created in it."""

    read_role = Role.ADMIN

    @extend_schema(responses=MembershipSerializer(many=True))
    def get(self, request, org):
        return self.paginated(selectors.membership_list(organization=self.organization), MembershipSerializer)

    @extend_schema(request=MemberAccountCreateSerializer, responses={201: MembershipSerializer})
    def post(self, request, org):
        data = self.validated(MemberAccountCreateSerializer)
        membership = services.member_account_create(
            organization=self.organization,
            username=data["username"],
            password=data["password"],
            email=data["email"],
            role=Role(data["role"]),
        )
        return self.respond(membership, MembershipSerializer, status.HTTP_201_CREATED)


class MemberDetailApi(OrganizationAPIView):
    read_role = Role.ADMIN

    @extend_schema(request=MembershipUpdateSerializer, responses={200: MembershipSerializer, 409: LAST_ADMIN})
    def patch(self, request, org, pk):
        data = self.validated(MembershipUpdateSerializer)
        membership = services.membership_update(
            organization=self.organization,
            membership_id=pk,
            role=Role(data["role"]) if "role" in data else None,
            is_active=data.get("is_active"),
        )
        return self.respond(membership, MembershipSerializer)

    @extend_schema(responses={204: None, 409: LAST_ADMIN})
    def delete(self, request, org, pk):
        services.membership_remove(organization=self.organization, membership_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberActivityApi(OrganizationAPIView):
    """Admins: per member, boxes and frames per day and the share of proposals they kept."""

    read_role = Role.ADMIN
    pagination_class = None  # one row per member, whole

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="the window, 1 to 90 days (default 14)")],
        responses=MemberActivitySerializer(many=True),
    )
    def get(self, request, org):
        days = self.validated(ActivityWindowSerializer, data=request.query_params)["days"]
        rows = selectors.member_activity_list(organization=self.organization, days=days)
        return Response(MemberActivitySerializer(rows, many=True).data)


class InvitationListApi(OrganizationAPIView):
    """Admins: pending invitations, and new ones (mailed, and the link answered once)."""

    read_role = Role.ADMIN

    @extend_schema(responses=InvitationSerializer(many=True))
    def get(self, request, org):
        return self.paginated(invitations.invitation_list(organization=self.organization), InvitationSerializer)

    @extend_schema(request=InvitationCreateSerializer, responses={201: IssuedInvitationSerializer})
    def post(self, request, org):
        data = self.validated(InvitationCreateSerializer)
        issued = invitations.invitation_create(
            organization=self.organization,
            email=data["email"],
            role=Role(data["role"]),
            invited_by=request.user,
            url_for=lambda token: request.build_absolute_uri(reverse("invitation", args=[token])),
        )
        return Response(IssuedInvitationSerializer(issued).data, status=status.HTTP_201_CREATED)


class InvitationDetailApi(OrganizationAPIView):
    read_role = Role.ADMIN

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="Already accepted, withdrawn or expired.")})
    def delete(self, request, org, pk):
        invitations.invitation_revoke(organization=self.organization, invitation_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationTokenApi(APIView):
    """The holder of an invitation link. Not tenant-scoped: the secret token is the authority,
    and it shows only the organisation's name and the role offered."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: InvitationPreviewSerializer, 404: UNKNOWN_LINK, 410: USED_LINK})
    def get(self, request, token):
        return Response(InvitationPreviewSerializer(invitations.invitation_get(token=token)).data)


class InvitationAcceptApi(APIView):
    """Accept an invitation: logged in, as yourself; otherwise by creating an account
    (``username``, ``password``), after which you are logged in."""

    permission_classes = [AllowAny]

    @extend_schema(
        request=InvitationAcceptSerializer,
        responses={
            201: OrganizationSerializer,
            403: OpenApiResponse(description="Not logged in and no CSRF token."),
            404: UNKNOWN_LINK,
            409: OpenApiResponse(description="Already a member of the organisation."),
            410: USED_LINK,
        },
    )
    def post(self, request, token):
        if request.user.is_authenticated:
            membership = invitations.invitation_accept(token=token, user=request.user)
        else:
            # DRF checks CSRF only for logged-in sessions; this request starts one.
            SessionAuthentication().enforce_csrf(request)
            serializer = InvitationAcceptSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            account = serializer.validated_data
            missing = {
                name: ["Choose one to create your account."]
                for name in ("username", "password")
                if not account.get(name)
            }
            if missing:
                raise ValidationError(missing)
            membership = invitations.invitation_accept_with_new_account(
                token=token, username=account["username"], password=account["password"]
            )
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        context = {"roles": {membership.organization_id: membership.role}}
        return Response(
            OrganizationSerializer(membership.organization, context=context).data, status=status.HTTP_201_CREATED
        )
