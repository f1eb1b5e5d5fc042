import math

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeller.tenants.access import scoped


@extend_schema_field(OpenApiTypes.INT)
class ScopedPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """An id that resolves only inside the caller's organisation (another tenant's id reads as missing)."""

    def __init__(self, model, **kwargs):
        self.model = model
        super().__init__(**kwargs)

    def get_queryset(self):
        return scoped(self.model, self.context["organization"])


class BoxField(serializers.ListField):
    """[x1, y1, x2, y2] in pixels of the frame, finite numbers.

    DRF's FloatField takes "NaN", "Infinity" and 1e999 (which json reads as inf); no box has
    such a corner. Where the box lies on the frame is checked by whoever knows the frame.
    """

    default_error_messages = {"not_finite": "Box coordinates must be finite numbers, got {box}."}

    def __init__(self, **kwargs):
        super().__init__(child=serializers.FloatField(), min_length=4, max_length=4, **kwargs)

    def to_internal_value(self, data):
        box = super().to_internal_value(data)
        if not all(math.isfinite(value) for value in box):
            self.fail("not_finite", box=box)
        return box


class VersionSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version you last saw; a stale one answers 409.")
