import numpy as np
import pytest

from proposals.boxes import iou_matrix
from proposals.outline import (
    COLOUR_THRESHOLD,
    COLOUR_WEIGHT,
    OUTLINE_WEIGHT,
    colour_model,
    colour_outline,
    object_outline,
    pulled_to_colour_outlines,
    pulled_to_own_outlines,
)
from proposals.bridging import fuse_and_bridge
from proposals.regions import follow_neighbours, objects_colour_models
from proposals.tracking import propagate_boxes

RED = 3

# A crescent-like object: a red disc with a bite out of its top, on a wood-like striped counter.
TRUTH = np.array([120.0, 80.0, 200.0, 130.0], np.float32)


def counter_with_object(seed: int = 0, at=TRUTH) -> np.ndarray:
    rng = np.random.default_rng(seed)
    height, width = 240, 320
    ys, xs = np.mgrid[0:height, 0:width]
    stripes = 0.85 + 0.15 * np.sin(ys / 4.0 + 2 * np.sin(xs / 30.0))
    image = np.stack([200 * stripes, 160 * stripes, 110 * stripes], axis=-1) + rng.normal(0, 4, (height, width, 3))
    x1, y1, x2, y2 = at
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


# --- the object's colours, learned where it is labelled -----------------------------------------

BLUE = (30, 60, 200)


def moved_and_half_hidden(shift=(14, 6)) -> tuple[np.ndarray, np.ndarray]:
    """The object of :func:`counter_with_object` moved by ``shift`` with its right part behind a
    blue object, and the box of what is still seen of it."""
    moved = TRUTH + np.array([*shift, *shift], np.float32)
    frame = counter_with_object(seed=1, at=moved)
    x1, y1, x2, y2 = moved.astype(int)
    hidden_from = x1 + 55
    frame[y1 - 20:y2 + 20, hidden_from:hidden_from + 60] = BLUE
    visible = np.argwhere((frame[..., 0] > 190) & (frame[..., 1] < 60))
    seen = np.array([visible[:, 1].min(), visible[:, 0].min(), visible[:, 1].max() + 1, visible[:, 0].max() + 1],
                    np.float32)
    return frame, seen


def test_the_colours_of_a_labelled_box_find_what_is_still_seen_of_its_object_in_another_frame():
    frame, seen = moved_and_half_hidden()
    followed = TRUTH + np.array([14, 6, 14, 6], np.float32)  # the whole object, where it went
    model = colour_model(counter_with_object(), TRUTH)

    outline = colour_outline(frame, followed, model)

    assert overlap(followed, seen) < 0.8
    assert outline is not None and overlap(outline, seen) > 0.9


def test_the_pixels_other_labelled_boxes_cover_do_not_teach_an_objects_colours():
    # A blue object stands over the labelled box's left end: its colour is not the red object's.
    labelled = counter_with_object()
    other = np.array([100.0, 70.0, 140.0, 140.0], np.float32)
    labelled[70:140, 100:140] = BLUE
    blue_bin = tuple(np.array(BLUE) // 16)

    assert colour_model(labelled, TRUTH)[blue_bin] > COLOUR_THRESHOLD
    assert colour_model(labelled, TRUTH, [other])[blue_bin] < COLOUR_THRESHOLD


def test_no_colour_model_where_the_objects_colours_find_only_a_part_of_it_where_it_is_labelled():
    # A dark cat on a dark street, its fur the street's colours: only its bright eyes are colours
    # the ground around lacks, so wherever it is followed the model would find the eyes and pull
    # the box in onto them.
    cat = np.clip(np.random.default_rng(0).normal(40, 6, (240, 320, 3)), 0, 255).astype(np.uint8)
    x1, y1 = TRUTH[:2].astype(int)
    cat[y1 + 15:y1 + 25, x1 + 25:x1 + 35] = cat[y1 + 15:y1 + 25, x1 + 45:x1 + 55] = (90, 230, 200)

    assert colour_model(cat, TRUTH) is None
    assert colour_model(counter_with_object(), TRUTH) is not None  # a red object on wood is all its colours


def test_a_box_moves_a_third_of_the_way_to_its_colours_outline_and_only_where_it_has_a_model():
    frame, seen = moved_and_half_hidden()
    followed = (TRUTH + np.array([14, 6, 14, 6], np.float32))[None].repeat(2, axis=0)
    model = colour_model(counter_with_object(), TRUTH)

    pulled = pulled_to_colour_outlines(frame, followed, [model, None])

    outline = colour_outline(frame, followed[0], model)
    np.testing.assert_allclose(pulled[0], followed[0] + COLOUR_WEIGHT * (outline - followed[0]), atol=1e-4)
    assert overlap(pulled[0], seen) > overlap(followed[0], seen)
    np.testing.assert_array_equal(pulled[1], followed[1])
    np.testing.assert_array_equal(pulled_to_colour_outlines(frame, followed, [model, None], min_iou=0.99), followed)


def test_no_colour_model_of_a_tiny_box_or_a_grey_frame_and_no_outline_without_the_objects_colours():
    rgb = counter_with_object()

    assert colour_model(rgb, [10, 10, 12, 30]) is None
    assert colour_model(np.zeros((60, 80), np.uint8), [10, 10, 40, 40]) is None
    model = colour_model(rgb, TRUTH)
    assert colour_outline(rgb, [20, 150, 80, 200], model) is None  # bare counter there
    assert pulled_to_colour_outlines(rgb, np.zeros((0, 4), np.float32), []).shape == (0, 4)


def test_each_fused_box_gets_the_mean_colour_model_of_the_labelled_boxes_that_went_to_it():
    first, second = counter_with_object(), counter_with_object(seed=1, at=TRUTH + 10)
    labelled = [(first, TRUTH[None]), (second, (TRUTH + 10)[None])]

    models = objects_colour_models(labelled, [np.array([0]), np.array([0])], 2)

    np.testing.assert_allclose(models[0], (colour_model(first, TRUTH) + colour_model(second, TRUTH + 10)) / 2)
    assert models[1] is None  # no labelled box went to it (a line's own box)


def test_boxes_followed_from_labelled_frames_are_pulled_towards_their_objects_colours():
    labelled = counter_with_object()
    frame, seen = moved_and_half_hidden(shift=(6, 3))
    carried = propagate_boxes(labelled, frame, TRUTH[None])
    fused = fuse_and_bridge([(*carried, np.array([RED]))], [(None, 1.0, TRUTH[None])])[0]

    followed, _, labels, _ = follow_neighbours(frame, [(labelled, TRUTH[None], np.array([RED]))])

    expected = pulled_to_colour_outlines(frame, fused, [colour_model(labelled, TRUTH)])
    np.testing.assert_allclose(followed, expected, atol=1e-4)
    assert labels.tolist() == [RED] and overlap(followed[0], seen) > overlap(fused[0], seen)
