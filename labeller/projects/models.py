from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from labeller.core.models import VersionedModel
from labeller.tenants.models import Organization


class Project(VersionedModel):
    """A labelling project inside an organisation: its media, taxonomy and models."""

    ORGANIZATION_PATH = "organization"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    # Keyframe selection per shot: between min and max, adapted to appearance variance.
    keyframes_min_per_shot = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    keyframes_max_per_shot = models.PositiveSmallIntegerField(default=8, validators=[MinValueValidator(1)])
    # Dense labelling: every Nth frame instead of variance-based keyframes (0 = off).
    every_nth_frame = models.PositiveIntegerField(default=0)
    jpeg_quality = models.PositiveSmallIntegerField(
        default=90, validators=[MinValueValidator(30), MaxValueValidator(100)]
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_project_name")]
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
