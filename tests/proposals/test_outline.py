import numpy as np
import pytest

from proposals.boxes import iou_matrix
from proposals.outline import OUTLINE_WEIGHT, object_outline, pulled_to_own_outlines

# A crescent-like object: a red disc with a bite out of its top, on a wood-like striped counter.
TRUTH = np.array([120.0, 80.0, 200.0, 130.0], np.float32)


def counter_with_object(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    height, width = 240, 320
    ys, xs = np.mgrid[0:height, 0:width]
    stripes = 0.85 + 0.15 * np.sin(ys / 4.0 + 2 * np.sin(xs / 30.0))
    image = np.stack([200 * stripes, 160 * stripes, 110 * stripes], axis=-1) + rng.normal(0, 4, (height, width, 3))
    x1, y1, x2, y2 = TRUTH
    centre_x, centre_y = (x1 + x2) / 2, y2
    inside = ((xs - centre_x) / ((x2 - x1) / 2)) ** 2 + ((ys - centre_y) / (y2 - y1)) ** 2 <= 1.0
    bite = ((xs - centre_x) / ((x2 - x1) / 3)) ** 2 + ((ys - y2 - 10) / (y2 - y1 - 15)) ** 2 <= 1.0
    image[inside & ~bite & (ys < y2)] = (200, 30, 40)
    return np.clip(image, 0, 255).astype(np.uint8)


def overlap(a, b) -> float:
    return float(iou_matrix(np.asarray(a, np.float32)[None], np.asarray(b, np.float32)[None])[0, 0])


def test_the_outline_of_a_loose_box_is_the_objects_own_extent():
    rgb = counter_with_object()
    loose = TRUTH + np.array([-9, -12, 6, 5], np.float32)  # the object shrank, or half of it went behind another

    outline = object_outline(rgb, loose)

    assert overlap(loose, TRUTH) < 0.75
    assert outline is not None and overlap(outline, TRUTH) > 0.9


def test_a_box_moves_a_third_of_the_way_to_its_outline_and_the_same_way_each_time():
    rgb = counter_with_object()
    loose = (TRUTH + np.array([-9, -12, 6, 5], np.float32))[None]

    pulled = pulled_to_own_outlines(rgb, loose)

    outline = object_outline(rgb, loose[0])
    np.testing.assert_allclose(pulled[0], loose[0] + OUTLINE_WEIGHT * (outline - loose[0]), atol=1e-4)
    assert overlap(pulled[0], TRUTH) > overlap(loose[0], TRUTH)
    np.testing.assert_array_equal(pulled_to_own_outlines(rgb, loose), pulled)


def test_a_box_whose_outline_disagrees_with_it_stays():
    rgb = counter_with_object()
    loose = (TRUTH + np.array([-9, -12, 6, 5], np.float32))[None]

    np.testing.assert_array_equal(pulled_to_own_outlines(rgb, loose, min_iou=0.99), loose)


@pytest.mark.parametrize("box", [[10, 10, 12, 30], [0, 0, 320, 240]], ids=["too small", "the whole frame"])
def test_no_outline_where_grabcut_cannot_judge(box):
    rgb = counter_with_object()

    assert object_outline(rgb, box) is None
    np.testing.assert_array_equal(pulled_to_own_outlines(rgb, [box]), np.array([box], np.float32))


def test_no_outline_on_a_grey_frame_and_no_boxes_no_work():
    assert object_outline(np.zeros((60, 80), np.uint8), [10, 10, 40, 40]) is None
    assert pulled_to_own_outlines(counter_with_object(), np.zeros((0, 4), np.float32)).shape == (0, 4)
