"""Frozen value types shared across the proposals library.

Boxes are always ``(x0, y0, x1, y1)`` in pixels of the source image, with the
continuous-coordinate convention: a box covering pixel columns ``a..b-1`` is
``x0=a, x1=b``.
"""

from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class LabelSuggestion:
    """One candidate label for a region; ``score`` is a calibrated probability in [0, 1]."""

    label_id: int
    score: float


@dataclass(frozen=True)
class RegionProposal:
    """A region worth showing to the annotator.

    ``source`` names what produced it (e.g. a proposal algorithm or a model
    version); ``suggestions`` are ordered best first and exclude background; ``backed``:
    where nothing was followed, another source found a box in the same place too.
    """

    box: Box
    score: float
    source: str
    suggestions: tuple[LabelSuggestion, ...] = ()
    backed: bool = False

    @property
    def label_id(self) -> int | None:
        """The label it suggests first, if any."""
        return self.suggestions[0].label_id if self.suggestions else None


@dataclass(frozen=True)
class GroundTruthBox:
    """A confirmed object used as ground truth by the detection metrics."""

    image_id: int
    category_id: int
    box: Box


@dataclass(frozen=True)
class DetectedBox:
    """A model's detection, scored in [0, 1], to be evaluated against ground truth."""

    image_id: int
    category_id: int
    box: Box
    score: float
