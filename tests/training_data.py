"""A tiny labelled project to train on: frames of coloured shapes on a plain background,
every shape boxed and every frame complete, so a detector learns something in seconds."""

import io
import random

from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from labeller.annotations.models import Annotation, AnnotationSource, AnnotationStatus, Label
from labeller.media.models import FrameStatus
from tests.factories import FrameFactory

WIDTH, HEIGHT = 128, 96
SHAPES = {"food.dish.dessert": (220, 40, 40), "food.dish.soup": (40, 90, 220)}


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def labelled_frames(project, count: int, *, seed: int = 0, complete: bool = True, validation: int = 2):
    """``count`` frames, each with one or two shapes and their confirmed boxes; returns them.

    Which frames validate a run is a hash of their ids, which differ between databases and
    runs: complete frames are added beyond ``count`` until ``validation`` of the project's
    complete frames are validation frames, so a run can always be judged."""
    labels = {name: Label.objects.get_or_create(project=project, name=name)[0] for name in SHAPES}
    rng = random.Random(seed)
    frames = []
    index = 0
    while index < count or (complete and _validation_frames(project) < validation):
        index += 1
        image = Image.new("RGB", (WIDTH, HEIGHT), (235, 230, 215))
        draw = ImageDraw.Draw(image)
        boxes = []
        for name in rng.sample(sorted(SHAPES), rng.choice([1, 2])):
            size = rng.randint(22, 34)
            x1, y1 = rng.randint(2, WIDTH - size - 2), rng.randint(2, HEIGHT - size - 2)
            box = (x1, y1, x1 + size, y1 + size)
            if any(not (box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1]) for b, _ in boxes):
                continue
            (draw.ellipse if name.endswith("soup") else draw.rectangle)(box, fill=SHAPES[name])
            boxes.append((box, labels[name]))
        frame = FrameFactory(
            project=project, index=index - 1, width=WIDTH, height=HEIGHT,
            status=FrameStatus.COMPLETE if complete else FrameStatus.NEW,
            image=ContentFile(_jpeg(image), name="frame.jpg"),
        )
        Annotation.objects.bulk_create(
            Annotation(project=project, frame=frame, label=label, x1=b[0], y1=b[1], x2=b[2], y2=b[3],
                       status=AnnotationStatus.CONFIRMED, source=AnnotationSource.HUMAN)
            for b, label in boxes
        )
        frames.append(frame)
    return frames


def _validation_frames(project) -> int:
    from labeller.training.runs import training_split

    return len(training_split(project_id=project.pk)[1])
