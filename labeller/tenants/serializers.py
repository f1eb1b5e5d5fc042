from rest_framework import serializers

from labeller.tenants.models import Membership, Organization, Role


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

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]


class MembershipCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiTokenSerializer(serializers.Serializer):
    token = serializers.CharField(source="key")
    created = serializers.DateTimeField()
    expires = serializers.DateTimeField()


class ApiTokenStatusSerializer(serializers.Serializer):
    """What the account page shows without revealing the key."""

    created = serializers.DateTimeField()
    expires = serializers.DateTimeField()
