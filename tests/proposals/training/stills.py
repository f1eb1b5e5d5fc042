"""Generated stills as the training library sees them (``TrainingFrame``), every object boxed."""

import numpy as np
from PIL import Image

from proposals.synthetic import write_synthetic_images
from proposals.training.data import TrainingFrame


def training_stills(folder, count: int, *, label_ids: dict[str, int], **options) -> list[TrainingFrame]:
    """``count`` stills written to ``folder`` (``options`` as for ``write_synthetic_images``),
    complete, each box labelled ``label_ids[its class]``."""
    images = write_synthetic_images(folder, count, classes=tuple(label_ids), **options)
    return [TrainingFrame(number, np.asarray(Image.open(image.path).convert("RGB")),
                          np.array([box.box for box in image.boxes], np.float32),
                          np.array([label_ids[box.label] for box in image.boxes], np.int64), complete=True)
            for number, image in enumerate(images)]
