import django_filters

from labeller.annotations.models import Annotation, AnnotationSource, AnnotationStatus


class AnnotationFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=AnnotationStatus.choices)
    source = django_filters.MultipleChoiceFilter(choices=AnnotationSource.choices)
    label_id = django_filters.NumberFilter(field_name="label_id")
    frame_id = django_filters.NumberFilter(field_name="frame_id")

    class Meta:
        model = Annotation
        fields = ["status", "source", "label_id", "frame_id"]
