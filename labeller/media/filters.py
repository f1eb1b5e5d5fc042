import django_filters

from labeller.media.models import Frame, FrameStatus


class FrameFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=FrameStatus.choices)
    is_keyframe = django_filters.BooleanFilter()
    video_id = django_filters.NumberFilter(field_name="video_id")
    shot_id = django_filters.NumberFilter(field_name="shot_id")

    class Meta:
        model = Frame
        fields = ["status", "is_keyframe", "video_id", "shot_id"]
