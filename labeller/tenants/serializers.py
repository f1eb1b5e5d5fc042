from rest_framework import serializers

from labeller.tenants.models import Invitation, Membership, Organization, Role


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["slug", "name", "role", "created_at"]

    def get_role(self, organization) -> str | None:
        memberships = self.context.get("roles") or {}
        return memberships.get(organization.pk)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)  # "" when none was given

    class Meta:
        model = Membership
        fields = ["id", "username", "email", "role", "is_active", "created_at"]


class MemberAccountCreateSerializer(serializers.Serializer):
    """An admin creates a new account in the organisation (the username must be new to the site)."""

    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, write_only=True, trim_whitespace=False)
    email = serializers.EmailField(required=False, default="")
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)

    def validate(self, data):
        if not data:
            raise serializers.ValidationError({"role": "Send role and/or is_active."})
        return data


class InvitationCreateSerializer(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.CharField(source="invited_by.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "expires_at", "created_at"]


class IssuedInvitationSerializer(serializers.Serializer):
    """The new invitation with its link: shown to the admin this once (only a hash is kept)."""

    invitation = InvitationSerializer()
    url = serializers.CharField()
    mailed = serializers.BooleanField()


class InvitationPreviewSerializer(serializers.Serializer):
    """What the person holding the link sees before accepting."""

    organization = serializers.CharField(source="organization.name")
    role = serializers.CharField()
    email = serializers.CharField()
    invited_by = serializers.CharField(source="invited_by.username", default=None, allow_null=True)
    expires_at = serializers.DateTimeField()


class InvitationAcceptSerializer(serializers.Serializer):
    """Logged in: no body. Not logged in: the new account's username and password."""

    username = serializers.CharField(max_length=150, required=False)
    password = serializers.CharField(max_length=128, required=False, write_only=True, trim_whitespace=False)


class ActivityWindowSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=90, default=14)


class ActivityDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    boxes = serializers.IntegerField()
    frames = serializers.IntegerField()


class MemberActivitySerializer(serializers.Serializer):
    membership_id = serializers.IntegerField()
    username = serializers.CharField()
    days = ActivityDaySerializer(source="activity.days", many=True)
    proposals_accepted = serializers.IntegerField(source="activity.proposals_accepted")
    proposals_rejected = serializers.IntegerField(source="activity.proposals_rejected")
    acceptance_rate = serializers.FloatField(source="activity.acceptance_rate", allow_null=True)


class ApiTokenSerializer(serializers.Serializer):
    token = serializers.CharField(source="key")
    created = serializers.DateTimeField()
    expires = serializers.DateTimeField()


class ApiTokenStatusSerializer(serializers.Serializer):
    """What the account page shows without revealing the key."""

    created = serializers.DateTimeField()
    expires = serializers.DateTimeField()
