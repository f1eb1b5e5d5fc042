"""factory_boy factories for the domain; media get real (tiny) JPEGs."""

import io

import factory
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from labeller.annotations.models import Annotation, AnnotationSource, AnnotationStatus, Label
from labeller.media.models import Frame, IngestStage, Shot, Video
from labeller.projects.models import Project
from labeller.tenants.models import Membership, Organization, Role


def jpeg_bytes(width: int = 64, height: int = 48, colour=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("password")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.ANNOTATOR


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"food.item{n}")


class VideoFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Video

    project = factory.SubFactory(ProjectFactory)
    original_name = "clip.mp4"
    file = factory.LazyFunction(lambda: ContentFile(b"not decoded in these tests", name="clip.mp4"))
    stage = IngestStage.READY
    progress = 100
    fps = 25.0
    frame_count = 100
    width = 64
    height = 48


class ShotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shot

    video = factory.SubFactory(VideoFactory)
    index = factory.Sequence(lambda n: n)
    start_frame = 0
    end_frame = 50


class FrameFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Frame

    project = factory.SubFactory(ProjectFactory)
    video = None
    shot = None
    index = factory.Sequence(lambda n: n)
    width = 64
    height = 48
    image = factory.LazyFunction(lambda: ContentFile(jpeg_bytes(), name="frame.jpg"))
    thumbnail = factory.LazyFunction(lambda: ContentFile(jpeg_bytes(32, 24), name="frame.thumb.jpg"))


class AnnotationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Annotation

    frame = factory.SubFactory(FrameFactory)
    project = factory.LazyAttribute(lambda a: a.frame.project)
    label = factory.LazyAttribute(lambda a: LabelFactory(project=a.frame.project))
    x1, y1, x2, y2 = 4.0, 4.0, 20.0, 20.0
    status = AnnotationStatus.CONFIRMED
    source = AnnotationSource.HUMAN
