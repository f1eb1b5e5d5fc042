import cv2
import numpy as np
import pytest

from proposals.boxes import (
    averaged_with_closest,
    clip_boxes,
    iou_matrix,
    matched_ground_truth,
    nms_keep,
    paired_iou,
    recall_at_iou,
    valid_box_mask,
)
from proposals.features import FeatureConfig, get_extractor
from proposals.labels import BACKGROUND, LabelIndex
from proposals.regions import (FrameCandidates, backing, candidate_boxes, exemplar_boxes,
                               frame_candidates, motion_boxes, propose_regions)
from proposals.tracking import (colour_histogram, colour_similarity, colour_weight, fuse_estimates, look_behind,
                                masked_correlation, outside_boxes, own_pixels, propagate_boxes, propagate_boxes_through,
                                redetect_boxes, separate_collisions)

HEIGHT, WIDTH = 120, 160
RED, GREEN = 1, 2


def smooth_background(seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 8)


def textured_patch(size: int = 30, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def tinted_patch(tint: tuple[int, int, int], size: int = 24, seed: int = 5) -> np.ndarray:
    """One grey texture on a coloured base: correlation, which takes out each channel's mean,
    sees the same pattern in every tint; only the colours differ."""
    blocks = np.random.default_rng(seed).integers(0, 60, (size // 4, size // 4, 1))
    texture = np.kron(blocks, np.ones((4, 4, 1), np.int64))  # coarse, so it survives resizing
    return np.clip(np.array(tint) + texture, 0, 255).astype(np.uint8)


RED_TINT, BLUE_TINT = (180, 40, 40), (40, 40, 180)


def frame_with_patch(x: int, y: int, patch: np.ndarray, background: np.ndarray) -> np.ndarray:
    frame = background.copy()
    frame[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return frame


def scene(discs=(), squares=(), height=HEIGHT, width=WIDTH) -> np.ndarray:
    """Grey background with red discs ``(cx, cy, r)`` and green squares ``(x, y, side)``."""
    image = np.full((height, width, 3), 200, np.uint8)
    for cx, cy, r in discs:
        cv2.circle(image, (cx, cy), r, (200, 30, 40), -1)
    for x, y, side in squares:
        cv2.rectangle(image, (x, y), (x + side - 1, y + side - 1), (40, 170, 60), -1)
    return image


def disc_box(cx, cy, r):
    return [cx - r, cy - r, cx + r + 1, cy + r + 1]


def square_box(x, y, side):
    return [x, y, x + side, y + side]


# --- boxes ---------------------------------------------------------------------------------


def test_iou_matrix_of_known_boxes():
    ious = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(ious, [[1.0, 1 / 3, 0.0]], rtol=1e-6)
    assert iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_paired_iou_is_the_iou_matrix_diagonal():
    a = np.array([[0, 0, 10, 10], [5, 5, 25, 15], [0, 0, 4, 4]], np.float32)
    b = np.array([[5, 0, 15, 10], [5, 5, 25, 15], [10, 10, 20, 20]], np.float32)
    np.testing.assert_allclose(paired_iou(a, b), np.diag(iou_matrix(a, b)), rtol=1e-6)
    np.testing.assert_allclose(paired_iou(a, b), [1 / 3, 1.0, 0.0], rtol=1e-6)


def test_clip_and_valid_boxes():
    clipped = clip_boxes([[-5, -5, 20, 8], [150, 100, 170, 130]], width=160, height=120)
    np.testing.assert_array_equal(clipped, [[0, 0, 20, 8], [150, 100, 160, 120]])
    mask = valid_box_mask([[0, 0, 10, 10], [5, 5, 6, 20], [0, 0, np.nan, 4], [10, 10, 5, 5]])
    assert mask.tolist() == [True, False, False, False]


def test_nms_merges_duplicates_but_keeps_distinct_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [50, 50, 60, 60]], np.float32)
    keep = nms_keep(boxes, [0.5, 0.9, 0.7, 0.1], iou_threshold=0.5)
    assert keep.tolist() == [1, 3]


def test_averaged_with_closest_moves_only_boxes_with_a_close_enough_other():
    boxes = [[0, 0, 30, 30], [100, 100, 130, 130], [200, 0, 230, 30]]
    others = [[3, 0, 33, 30], [0, 0, 60, 60], [110, 110, 170, 170]]  # the first near box 0, the others too loose

    moved = averaged_with_closest(boxes, others, min_iou=0.5, weight=1 / 3)

    np.testing.assert_allclose(moved, [[1, 0, 31, 30], [100, 100, 130, 130], [200, 0, 230, 30]], atol=1e-5)
    np.testing.assert_array_equal(averaged_with_closest(boxes, np.zeros((0, 4)), min_iou=0.5, weight=0.5), boxes)


def test_recall_at_iou_counts_matched_ground_truth():
    ground_truth = [[0, 0, 10, 10], [20, 20, 30, 30]]
    assert recall_at_iou(ground_truth, [[0, 0, 10, 11]]) == 0.5
    assert recall_at_iou(ground_truth, [[0, 0, 10, 11], [21, 21, 31, 31]]) == 1.0
    assert recall_at_iou(ground_truth, np.zeros((0, 4))) == 0.0
    assert recall_at_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]) == 1.0


# --- propagation ---------------------------------------------------------------------------


def test_propagation_follows_a_moving_textured_object():
    background, patch = smooth_background(), textured_patch()
    before = frame_with_patch(40, 40, patch, background)
    after = frame_with_patch(49, 35, patch, background)

    moved, confidence = propagate_boxes(before, after, np.array([[40, 40, 70, 70]], np.float32))

    assert iou_matrix(moved, [[49, 35, 79, 65]])[0, 0] > 0.8
    assert confidence[0] > 0.7


def test_propagation_follows_a_growing_object():
    background = smooth_background()
    before = frame_with_patch(50, 40, textured_patch(30), background)
    after = frame_with_patch(47, 37, cv2.resize(textured_patch(30), (36, 36), interpolation=cv2.INTER_LINEAR), background)

    moved, _ = propagate_boxes(before, after, np.array([[50, 40, 80, 70]], np.float32))

    assert iou_matrix(moved, [[47, 37, 83, 73]])[0, 0] > 0.8


def test_forward_backward_failure_lowers_confidence_on_an_unrelated_frame():
    background, patch = smooth_background(), textured_patch()
    before = frame_with_patch(40, 40, patch, background)
    matching = frame_with_patch(44, 42, patch, background)
    unrelated = np.random.default_rng(7).integers(0, 255, before.shape, dtype=np.uint8)
    box = np.array([[40, 40, 70, 70]], np.float32)

    _, confidence_matching = propagate_boxes(before, matching, box)
    _, confidence_unrelated = propagate_boxes(before, unrelated, box)

    assert confidence_unrelated[0] < 0.3 < confidence_matching[0]


def test_propagation_through_several_frames_covers_a_large_shift():
    background, patch = smooth_background(), textured_patch()
    frames = [frame_with_patch(10 + 12 * step, 45, patch, background) for step in range(8)]

    moved, confidence = propagate_boxes_through(frames, np.array([[10, 45, 40, 75]], np.float32))

    assert iou_matrix(moved, [[94, 45, 124, 75]])[0, 0] > 0.8
    assert confidence[0] > 0.5


def test_a_box_followed_through_the_frames_between_keeps_to_its_object_where_one_jump_takes_a_twin():
    # The object crosses the frame, changing a little (noise) as it goes; its twin, the labelled
    # frame's exact look, waits at the top left, where a search across the frame finds it first.
    background, patch = smooth_background(), textured_patch()
    rng = np.random.default_rng(3)
    scenery = frame_with_patch(2, 2, patch, background)

    def at(x: int) -> np.ndarray:
        changed = np.clip(patch.astype(int) + rng.integers(-12, 13, patch.shape), 0, 255).astype(np.uint8)
        return frame_with_patch(x, 60, changed, scenery)

    labelled = frame_with_patch(10, 60, patch, scenery)
    *between, target = [at(10 + 12 * step) for step in range(1, 8)]
    box, truth, twin = [[10, 60, 40, 90]], [[94, 60, 124, 90]], [[2, 2, 32, 32]]

    jumped, _ = propagate_boxes(labelled, target, box, seconds_apart=1.4)
    followed, confidence = propagate_boxes(labelled, target, box, seconds_apart=1.4, between=between)

    assert iou_matrix(jumped, twin)[0, 0] > 0.8  # what one jump does
    assert iou_matrix(followed, truth)[0, 0] > 0.8 and confidence[0] > 0.5


def test_a_box_the_flow_through_the_frames_between_lets_go_of_keeps_the_jumps_answer():
    background, patch = smooth_background(), textured_patch()
    before, after = frame_with_patch(10, 45, patch, background), frame_with_patch(50, 52, patch, background)
    unrelated = [np.random.default_rng(seed).integers(0, 255, before.shape, dtype=np.uint8) for seed in range(3)]
    box = np.array([[10, 45, 40, 75]], np.float32)

    jumped, jump_confidence = propagate_boxes(before, after, box)
    followed, confidence = propagate_boxes(before, after, box, between=unrelated)

    assert iou_matrix(followed, [[50, 52, 80, 82]])[0, 0] > 0.8
    np.testing.assert_array_equal(followed, jumped)
    np.testing.assert_array_equal(confidence, jump_confidence)


def test_a_box_flow_cannot_follow_is_found_again_by_its_appearance():
    # Frames to label are a second apart: the object jumped further than flow can follow.
    background, patch = smooth_background(), textured_patch()
    before = frame_with_patch(10, 45, patch, background)
    after = frame_with_patch(10 + 40, 52, patch, background)
    box = np.array([[10, 45, 40, 75]], np.float32)

    found, confidence = redetect_boxes(before, after, box)
    moved, propagated_confidence = propagate_boxes(before, after, box)

    assert iou_matrix(found, [[50, 52, 80, 82]])[0, 0] > 0.8 and confidence[0] > 0.8
    assert iou_matrix(moved, [[50, 52, 80, 82]])[0, 0] > 0.8 and propagated_confidence[0] > 0.8


def test_colour_similarity_tells_tints_apart_and_says_nothing_on_grey_frames():
    red_box, blue_box = [20, 20, 44, 44], [100, 60, 124, 84]
    red_frame = frame_with_patch(20, 20, tinted_patch(RED_TINT), smooth_background())
    frame = frame_with_patch(100, 60, tinted_patch(BLUE_TINT), red_frame)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)

    assert colour_similarity(frame, red_box, frame, red_box) == pytest.approx(1.0)
    assert colour_similarity(frame, red_box, frame, blue_box) < 0.3
    assert colour_similarity(grey, red_box, grey, blue_box) == 1.0
    assert colour_similarity(frame, red_box, frame, [200, 200, 210, 210]) == 0.0  # outside the frame


def test_colour_weight_keeps_matching_colours_and_ignores_colour_where_it_says_nothing():
    red_box, blue_box = [20, 20, 44, 44], [100, 60, 124, 84]
    red_frame = frame_with_patch(20, 20, tinted_patch(RED_TINT), smooth_background())
    frame = frame_with_patch(100, 60, tinted_patch(BLUE_TINT), red_frame)
    red = colour_histogram(frame, red_box)

    assert colour_weight(red, frame, red_box) == pytest.approx(1.0)
    assert colour_weight(red, frame, blue_box) < 0.3
    assert colour_weight(None, frame, blue_box) == 1.0  # no template colours
    assert colour_weight(red, cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), blue_box) == 1.0  # a grey frame
    # A box reaching past the red patch matches red only once what lies past it is left out.
    assert colour_weight(red, frame, [20, 20, 124, 84]) < 0.5
    assert colour_weight(red, frame, [20, 20, 44, 84], left_out=[[0, 44, 160, 120]]) == pytest.approx(1.0)
    assert colour_histogram(frame, red_box, left_out=[[0, 0, 160, 120]]) is None  # nothing left


def test_looking_again_prefers_the_look_alike_of_the_same_colour():
    # The object comes back a little changed (noise); a look-alike of another colour has its
    # texture exactly, so correlation alone ranks the look-alike first.
    background, red, blue = smooth_background(), tinted_patch(RED_TINT), tinted_patch(BLUE_TINT)
    changed = np.clip(red + np.random.default_rng(9).integers(-10, 10, red.shape), 0, 255).astype(np.uint8)
    before = frame_with_patch(60, 50, red, background)
    after = frame_with_patch(110, 85, changed, frame_with_patch(15, 10, blue, background))

    found, confidence = redetect_boxes(before, after, [[60, 50, 84, 74]])

    assert iou_matrix(found, [[110, 85, 134, 109]])[0, 0] > 0.8
    assert confidence[0] > 0.5


def twin_look_alikes():
    """Two identical objects, a second apart: ``(before, after, boxes before, boxes after)``."""
    background, patch = smooth_background(), textured_patch(24, seed=4)
    before = frame_with_patch(20, 20, patch, frame_with_patch(80, 20, patch, background))
    after = frame_with_patch(40, 70, patch, frame_with_patch(100, 70, patch, background))
    return before, after, np.array([[20, 20, 44, 44], [80, 20, 104, 44]], np.float32), np.array(
        [[40, 70, 64, 94], [100, 70, 124, 94]], np.float32)


def test_looking_again_leaves_out_the_places_other_objects_hold():
    before, after, boxes, truth = twin_look_alikes()

    first, _ = redetect_boxes(before, after, boxes[1:])  # the twins match equally: the first place wins
    found, confidence = redetect_boxes(before, after, boxes[1:], taken=[truth[:1]])
    _, none = redetect_boxes(before, after, boxes[1:], taken=[truth])  # both places held

    assert iou_matrix(first, truth[:1])[0, 0] > 0.8
    assert iou_matrix(found, truth[1:])[0, 0] > 0.8 and confidence[0] > 0.8
    assert none[0] < 0.2


def test_looking_again_leaves_out_the_pixels_another_labelled_box_covers():
    # A strongly textured object stands in front of the right half of a faint one. Matched
    # whole, the faint one's template is mostly the other object's texture and is found where
    # that object went; with the other box's pixels left out, its own half finds it.
    background, faint, strong = smooth_background(), tinted_patch(RED_TINT), textured_patch(24, seed=7)
    before = frame_with_patch(52, 40, strong, frame_with_patch(40, 40, faint, background))
    after = frame_with_patch(20, 80, faint, frame_with_patch(110, 75, strong, background))
    boxes = np.array([[40, 40, 64, 64], [52, 40, 76, 64]], np.float32)
    truth = np.array([[20, 80, 44, 104], [110, 75, 134, 99]], np.float32)

    whole, _ = redetect_boxes(before, after, boxes[:1])
    own, confidence = redetect_boxes(before, after, boxes[:1], others=[boxes[1:]])
    moved, _ = propagate_boxes(before, after, boxes)  # the frames' other boxes are known there

    assert iou_matrix(whole, truth[:1])[0, 0] < 0.2
    assert iou_matrix(own, truth[:1])[0, 0] > 0.8 and confidence[0] > 0.3
    assert iou_matrix(moved, truth).diagonal().min() > 0.8


def test_the_masked_correlation_is_opencvs_and_scores_a_flat_window_minus_one():
    rng = np.random.default_rng(3)
    window = cv2.GaussianBlur(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8), (0, 0), 2)
    window[:, :25] = 120  # flat: OpenCV divides by zero there
    template = rng.integers(0, 255, (14, 20, 3), dtype=np.uint8)
    mask = (rng.random((14, 20)) > 0.3).astype(np.uint8)

    opencv = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED, mask=mask)
    ours = masked_correlation(window, template, mask)

    finite = np.isfinite(opencv) & (np.abs(opencv) <= 1.0)
    assert ours.shape == opencv.shape and finite.mean() > 0.5
    assert np.abs(ours[finite] - opencv[finite]).max() < 1e-4
    assert (ours[:, :5] == -1.0).all()  # wholly on the flat strip
    grey_window, grey_template = cv2.cvtColor(window, cv2.COLOR_RGB2GRAY), cv2.cvtColor(template, cv2.COLOR_RGB2GRAY)
    grey = cv2.matchTemplate(grey_window, grey_template, cv2.TM_CCOEFF_NORMED, mask=mask)
    finite = np.isfinite(grey) & (np.abs(grey) <= 1.0)
    assert np.abs(masked_correlation(grey_window, grey_template, mask)[finite] - grey[finite]).max() < 1e-4


def test_the_masked_correlation_can_leave_out_pixels_of_the_window_too():
    rng = np.random.default_rng(4)
    window = cv2.GaussianBlur(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8), (0, 0), 1.5)
    template = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    mask = (rng.random((12, 16)) > 0.3).astype(np.uint8)
    window_mask = np.ones((50, 70), np.uint8)
    window_mask[10:30, 20:45] = 0  # something stands in front there

    scores = masked_correlation(window, template, mask, window_mask)

    # Where both masks keep everything the mask adds nothing; elsewhere, each place is the
    # normalised correlation over the pixels both keep, with the means taken over those.
    unmasked = masked_correlation(window, template, mask)
    assert scores.shape == unmasked.shape
    assert np.abs(scores[35:, :] - unmasked[35:, :]).max() < 1e-4  # rows whose places see no 0
    for top, left in [(5, 15), (12, 30), (20, 10), (3, 40)]:
        kept = (mask * window_mask[top:top + 12, left:left + 16]).astype(bool)
        a = window[top:top + 12, left:left + 16].astype(float)[kept]
        b = template.astype(float)[kept]
        a, b = a - a.mean(axis=0), b - b.mean(axis=0)
        assert scores[top, left] == pytest.approx((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), abs=1e-4)
    grey = cv2.cvtColor(window, cv2.COLOR_RGB2GRAY), cv2.cvtColor(template, cv2.COLOR_RGB2GRAY)
    whole = np.ones((50, 70), np.uint8)
    assert np.abs(masked_correlation(*grey, mask, whole) - masked_correlation(*grey, mask)).max() < 1e-4
    flat = np.full((50, 70, 3), 120, np.uint8)
    assert (masked_correlation(flat, template, mask, window_mask) == -1.0).all()
    # Asked for 90 % of the template in view, the places that lose a fifth or more of it to the
    # window's 0s score -1; those that see no 0 stay.
    mostly_in_view = masked_correlation(window, template, mask, window_mask, min_in_view=0.9)
    assert (mostly_in_view[5:25, 10:40] == -1.0).all() and np.array_equal(mostly_in_view[35:, :], scores[35:, :])


def a_faint_object_behind_a_strong_one():
    """``(before, after, boxes before, boxes after)``: a faint object and a strongly textured one
    apart, then the strong one in front of the faint one's right half."""
    background, faint, strong = smooth_background(), tinted_patch(RED_TINT), textured_patch(24, seed=7)
    before = frame_with_patch(100, 20, strong, frame_with_patch(30, 40, faint, background))
    after = frame_with_patch(82, 70, strong, frame_with_patch(70, 70, faint, background))
    return before, after, np.array([[30, 40, 54, 64], [100, 20, 124, 44]], np.float32), np.array(
        [[70, 70, 94, 94], [82, 70, 106, 94]], np.float32)


def test_looking_again_around_what_stands_in_front_finds_the_object_sure():
    # Matched whole, the faint object's place holds half of the other object's texture and
    # colours, so it is found unsure (and would be hidden); with the other object's pixels
    # left out of the frame searched, its own half finds it sure.
    before, after, boxes, truth = a_faint_object_behind_a_strong_one()

    whole, whole_confidence = redetect_boxes(before, after, boxes[:1])
    behind, confidence = redetect_boxes(before, after, boxes[:1], hidden=[truth[1:]])
    _, covered = redetect_boxes(before, after, boxes[:1], hidden=[[[50, 50, 115, 115]]])  # hidden wholly

    assert whole_confidence[0] < 0.2
    assert iou_matrix(behind, truth[:1])[0, 0] > 0.8 and confidence[0] > 0.8
    assert covered[0] < 0.2  # too little of it in view anywhere near: not found there


def test_an_unsure_box_that_a_surer_one_overlaps_is_looked_for_behind_it():
    before, after, boxes, truth = a_faint_object_behind_a_strong_one()
    carried = np.array([[60, 75, 84, 99], truth[1]], np.float32)  # the faint one a little off

    moved, confidence = look_behind(before, after, boxes, carried, np.array([0.1, 0.9], np.float32))
    sure, sure_confidence = look_behind(before, after, boxes, carried, np.array([0.7, 0.9], np.float32))
    alone, alone_confidence = look_behind(before, after, boxes, carried, np.array([0.1, 0.3], np.float32))
    propagated, propagated_confidence = propagate_boxes(before, after, boxes)

    assert iou_matrix(moved, truth).diagonal().min() > 0.8 and confidence[0] > 0.8
    assert confidence[1] == pytest.approx(0.9)  # the surer box stays as it was
    assert sure.tolist() == carried.tolist() and sure_confidence.tolist() == pytest.approx([0.7, 0.9])
    assert alone.tolist() == carried.tolist() and alone_confidence.tolist() == pytest.approx([0.1, 0.3])
    assert iou_matrix(propagated, truth).diagonal().min() > 0.8 and propagated_confidence.min() > 0.8


def test_outside_boxes_marks_what_no_box_covers():
    kept = outside_boxes((10, 20), (100, 50), [[110.5, 40, 140, 55.2]])
    assert kept.shape == (10, 20) and kept[:6, 10:].sum() == 0 and kept[6:, :].all() and kept[:, :10].all()
    assert outside_boxes((10, 20), (100, 50), []) is None
    assert outside_boxes((10, 20), (100, 50), [[0, 0, 10, 10]]) is None


def test_a_template_keeps_its_own_pixels_unless_too_few_are_left():
    covered = own_pixels((10, 20), (100, 50), [[110.5, 40, 140, 55.2]])  # the right half's top rows
    assert covered.shape == (10, 20) and covered[:6, 10:].sum() == 0 and covered[6:, :].all() and covered[:, :10].all()
    assert own_pixels((10, 20), (100, 50), []) is None  # nothing covers it
    assert own_pixels((10, 20), (100, 50), [[0, 0, 10, 10]]) is None  # another box far away
    assert own_pixels((10, 20), (100, 50), [[95, 45, 118, 65]]) is None  # 90 % covered: matched whole


def test_of_two_boxes_that_landed_on_one_place_the_less_sure_looks_again():
    # Both twins were carried onto the left one; the less sure is looked for again with
    # that place left out and found on the other.
    before, after, boxes, truth = twin_look_alikes()
    moved = np.array([truth[0], truth[0]], np.float32)

    separated, confidence = separate_collisions(before, after, boxes, moved, np.array([0.9, 0.4], np.float32))
    other_way, _ = separate_collisions(before, after, boxes, moved, np.array([0.4, 0.9], np.float32))
    overlapping = np.array([[20, 20, 44, 44], [24, 20, 48, 44]], np.float32)  # overlapped before too
    kept, kept_confidence = separate_collisions(before, after, overlapping, moved, np.array([0.4, 0.9], np.float32))

    assert iou_matrix(separated, truth).diagonal().min() > 0.8 and confidence[1] > 0.8
    assert iou_matrix(other_way[:1], truth[1:])[0, 0] > 0.8  # the less sure one moves, whichever it is
    assert kept.tolist() == moved.tolist() and kept_confidence.tolist() == pytest.approx([0.4, 0.9])


def test_a_followed_box_whose_colour_changed_is_less_sure():
    # The same pattern in another colour is another object: a followed box that lands on it
    # must count for less, so that it is shown less and its other estimate wins.
    background, box = smooth_background(), np.array([[40, 40, 64, 64]], np.float32)
    before = frame_with_patch(40, 40, tinted_patch(RED_TINT), background)
    same = frame_with_patch(44, 42, tinted_patch(RED_TINT), background)
    recoloured = frame_with_patch(44, 42, tinted_patch(BLUE_TINT), background)

    _, sure = propagate_boxes(before, same, box)
    _, unsure = propagate_boxes(before, recoloured, box)

    assert sure[0] > 0.7
    assert unsure[0] < 0.5 * sure[0]


def test_frames_seconds_apart_are_searched_further_and_over_more_scales():
    # Four seconds later the object has crossed most of the frame and grown by half: a
    # second's search range (half the frame's height around it, +-25 %) cannot reach it,
    # four seconds' range (eight box sizes, +-56 %) does.
    background = cv2.resize(smooth_background(), (WIDTH * 3, HEIGHT * 3), interpolation=cv2.INTER_LINEAR)
    patch = cv2.resize(textured_patch(8, seed=3), (40, 40), interpolation=cv2.INTER_NEAREST)
    before = frame_with_patch(20, 20, patch, background)
    grown = cv2.resize(patch, (60, 60), interpolation=cv2.INTER_NEAREST)
    after = frame_with_patch(300, 250, grown, background)
    box = np.array([[20, 20, 60, 60]], np.float32)
    truth = [[300, 250, 360, 310]]

    near, _ = redetect_boxes(before, after, box, seconds_apart=1.0)
    far, confidence = redetect_boxes(before, after, box, seconds_apart=4.0)

    assert iou_matrix(near, truth)[0, 0] < 0.5
    assert iou_matrix(far, truth)[0, 0] > 0.7 and confidence[0] > 0.8


def test_a_small_object_is_looked_for_across_half_the_frame():
    # Small objects cross as many pixels in a second as large ones: a 16-pixel light that
    # moved ten of its sizes is still in the window, which is at least half the frame.
    background = cv2.resize(smooth_background(), (WIDTH * 3, HEIGHT * 3), interpolation=cv2.INTER_LINEAR)
    patch = cv2.resize(textured_patch(8, seed=5), (16, 16), interpolation=cv2.INTER_NEAREST)
    before = frame_with_patch(40, 40, patch, background)
    after = frame_with_patch(200, 40, patch, background)

    found, confidence = redetect_boxes(before, after, [[40, 40, 56, 56]], seconds_apart=1.0)

    assert iou_matrix(found, [[200, 40, 216, 56]])[0, 0] > 0.8 and confidence[0] > 0.8


def test_agreeing_estimates_of_one_object_are_averaged_and_the_rest_kept():
    before = (np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32), np.array([0.9, 0.2], np.float32), np.array([RED, GREEN]))
    after = (
        np.array([[100, 100, 110, 110], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32),
        np.array([0.3, 0.5, 0.8], np.float32),
        np.array([RED, RED, RED]),
    )

    boxes, confidence, labels, _ = fuse_estimates([before, after])

    # The two red boxes near the origin are one object: one mean box, which both frames
    # support. The green box and the red one on it are different labels, so both stay, as
    # does the red box far away that agrees with nothing; only one of two frames supports each.
    assert boxes.tolist() == [[1, 0, 11, 10], [50, 50, 60, 60], [100, 100, 110, 110], [50, 50, 60, 60]]
    assert confidence.tolist() == pytest.approx([0.7, 0.1, 0.15, 0.4])
    assert labels.tolist() == [RED, GREEN, RED, RED]
    assert [len(a) for a in fuse_estimates([])] == [0, 0, 0, 0]
    assert fuse_estimates([before])[1].tolist() == pytest.approx([0.9, 0.2])  # one frame: as carried


def test_each_labelled_frame_adds_at_most_one_estimate_to_an_object():
    # Two boxes of one frame on the same object stay apart: only the closer one is averaged in.
    first = (np.array([[0, 0, 10, 10]], np.float32), np.array([0.5], np.float32), np.array([RED]))
    second = (np.array([[1, 0, 11, 10], [0, 0, 10, 10]], np.float32), np.array([0.5, 0.6], np.float32), np.array([RED, RED]))

    boxes, _, _, _ = fuse_estimates([first, second])

    assert boxes.tolist() == [[0, 0, 10, 10], [1, 0, 11, 10]]


# --- candidates ----------------------------------------------------------------------------


def test_candidate_boxes_recall_simple_objects():
    discs = [(30, 30, 14), (120, 85, 20)]
    squares = [(90, 15, 24), (20, 75, 30)]
    image = scene(discs, squares)
    ground_truth = [disc_box(*d) for d in discs] + [square_box(*s) for s in squares]

    boxes = candidate_boxes(image, max_candidates=20)

    assert len(boxes) <= 20
    assert recall_at_iou(ground_truth, boxes, iou_threshold=0.5) == 1.0
    # The best-ranked candidates are the objects, not pieces of background.
    assert matched_ground_truth(ground_truth, boxes[:6]).all()


def camera_view(scenery: np.ndarray, dx: float, dy: float, zoom: float) -> np.ndarray:
    """What a camera panned by ``(dx, dy)`` and zoomed by ``zoom`` sees of ``scenery``, HEIGHT x WIDTH."""
    centre_x, centre_y = scenery.shape[1] / 2 + dx, scenery.shape[0] / 2 + dy
    to_view = np.array([[zoom, 0, WIDTH / 2 - zoom * centre_x], [0, zoom, HEIGHT / 2 - zoom * centre_y]], np.float32)
    return cv2.warpAffine(scenery, to_view, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)


def panning_shot(positions):
    """A panning, zooming camera over textured scenery, one textured patch at each of
    ``positions`` (one per frame, None for no patch), in view pixels."""
    noise = np.random.default_rng(3).integers(0, 255, (200, 260, 3), dtype=np.uint8)
    scenery = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 4), None, 0, 255, cv2.NORM_MINMAX)
    patch = textured_patch(24)
    frames = []
    for step, position in enumerate(positions):
        view = camera_view(scenery, dx=2.0 * step, dy=-1.0 * step, zoom=1.0 + 0.01 * step)
        frames.append(view if position is None else frame_with_patch(*position, patch, view))
    return frames


def test_motion_boxes_find_the_moving_object_with_the_camera_panning_and_zooming():
    # The patch crosses the frame; the one at step 3 is the frame to search.
    frames = panning_shot([(10 + 20 * step, 20 + 10 * step) for step in range(7)])
    rgb, others = frames[3], frames[:3] + frames[4:]

    boxes, fill = motion_boxes(rgb, others)

    # Only where it is now: not where it was or will be, and no scenery edges.
    assert recall_at_iou([[70, 50, 94, 74]], boxes, iou_threshold=0.7) == 1.0
    assert len(boxes) == 1
    assert fill[0] > 0.8


def test_motion_boxes_find_nothing_in_a_scene_where_only_the_camera_moves():
    frames = panning_shot([None] * 7)

    boxes, _ = motion_boxes(frames[3], frames[:3] + frames[4:])

    assert len(boxes) == 0


def test_motion_boxes_need_two_other_frames():
    frames = panning_shot([(10 + 20 * step, 20) for step in range(2)])

    assert len(motion_boxes(frames[0], frames[1:])[0]) == 0
    assert len(motion_boxes(frames[0], [])[0]) == 0


def test_frame_candidates_of_a_video_frame_include_the_moving_objects(extractor):
    frames = panning_shot([(10 + 20 * step, 20 + 10 * step) for step in range(7)])

    candidates = frame_candidates(frames[3], extractor=extractor, others=frames[:3] + frames[4:])
    still = frame_candidates(frames[3], extractor=extractor)

    moving = candidates.boxes[candidates.sources == "motion"]
    assert recall_at_iou([[70, 50, 94, 74]], moving, iou_threshold=0.7) == 1.0
    assert len(candidates.vectors) == len(candidates.boxes) == len(candidates.prior) == len(candidates.sources)
    assert set(still.source_of_each()) == {"candidate"}
    assert len(candidates.boxes) == len(still.boxes) + len(moving)


# --- propose_regions -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def extractor():
    return get_extractor(FeatureConfig(weights="none"))


def test_propose_regions_returns_at_most_top_k_sorted_valid_boxes():
    image = scene([(30, 30, 14), (120, 85, 20)], [(90, 15, 24), (20, 75, 30)])

    proposals = propose_regions(image, top_k=3)

    assert 0 < len(proposals) <= 3
    scores = [p.score for p in proposals]
    assert scores == sorted(scores, reverse=True)
    boxes = np.array([p.box for p in proposals], np.float32)
    assert valid_box_mask(boxes).all()
    assert (boxes[:, [0, 1]] >= 0).all() and (boxes[:, 2] <= WIDTH).all() and (boxes[:, 3] <= HEIGHT).all()
    assert iou_matrix(boxes, boxes)[np.triu_indices(len(boxes), k=1)].max(initial=0) <= 0.5


def test_propose_regions_puts_a_propagated_box_first_with_its_label():
    background, patch = smooth_background(), textured_patch()
    neighbour = frame_with_patch(40, 40, patch, background)
    current = frame_with_patch(46, 43, patch, background)

    proposals = propose_regions(
        current, neighbours=[(neighbour, np.array([[40, 40, 70, 70]], np.float32), np.array([7]))]
    )

    best = proposals[0]
    assert best.source == "propagation"
    assert iou_matrix([best.box], [[46, 43, 76, 73]])[0, 0] > 0.8
    assert best.suggestions[0].label_id == 7


def test_a_moving_blob_over_a_followed_box_is_not_proposed_but_one_where_nothing_is_followed_is():
    background, patch = smooth_background(), textured_patch()
    neighbour = frame_with_patch(40, 40, patch, background)
    current = frame_with_patch(46, 43, patch, background)
    # Motion saw the followed object (looser, merged with a shadow) and a newcomer at the right.
    moving = np.array([[40, 38, 100, 80], [120, 20, 150, 50]], np.float32)
    candidates = FrameCandidates(moving, np.array([0.9, 0.9], np.float32), sources=np.array(["motion", "motion"]))

    proposals = propose_regions(
        current, neighbours=[(neighbour, np.array([[40, 40, 70, 70]], np.float32), np.array([7]))],
        candidates=candidates,
    )

    by_source = {(p.source, tuple(round(v) for v in p.box)) for p in proposals}
    assert ("motion", (120, 20, 150, 50)) in by_source
    assert [p.source for p in proposals if iou_matrix([p.box], [[46, 43, 76, 73]])[0, 0] > 0.3] == ["propagation"]


def test_a_followed_box_moves_a_third_of_the_way_to_the_outline_the_pixels_give_of_its_object():
    background, patch = smooth_background(), textured_patch()
    neighbour = frame_with_patch(40, 40, patch, background)
    current = frame_with_patch(46, 43, patch, background)
    # The pixels outline the object a little taller than the template found it (a part came out
    # from behind something), and a far candidate overlaps nothing followed.
    outline = np.array([[46, 43, 76, 82], [120, 20, 150, 50]], np.float32)
    candidates = FrameCandidates(outline, np.array([0.2, 0.2], np.float32))
    neighbours = [(neighbour, np.array([[40, 40, 70, 70]], np.float32), np.array([7]))]

    nothing = FrameCandidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    alone = [p for p in propose_regions(current, neighbours=neighbours, candidates=nothing) if p.source == "propagation"]
    with_outline = [
        p for p in propose_regions(current, neighbours=neighbours, candidates=candidates) if p.source == "propagation"
    ]

    followed, moved = np.array(alone[0].box), np.array(with_outline[0].box)
    np.testing.assert_allclose(moved, followed + (outline[0] - followed) / 3, atol=1e-4)
    assert moved[3] > followed[3] + 2


def red_discs_confirmed_green_square_rejected(extractor) -> LabelIndex:
    confirmed = scene([(35, 40, 16), (110, 70, 18)], [(70, 15, 26)])
    index = LabelIndex(extractor.dim)
    examples = np.array([disc_box(35, 40, 16), disc_box(110, 70, 18), square_box(70, 15, 26)], np.float32)
    index.add(np.arange(3), extractor.embed_crops(confirmed, examples), np.array([RED, RED, BACKGROUND]))
    return index


def test_propose_regions_ranks_regions_like_confirmed_objects_above_background_like_ones(extractor):
    index = red_discs_confirmed_green_square_rejected(extractor)
    unseen = scene([(120, 35, 17)], [(25, 60, 28)])

    proposals = propose_regions(unseen, label_index=index, extractor=extractor, top_k=5)

    assert iou_matrix([proposals[0].box], [disc_box(120, 35, 17)])[0, 0] > 0.5
    assert proposals[0].suggestions[0].label_id == RED
    square_scores = [p.score for p in proposals if iou_matrix([p.box], [square_box(25, 60, 28)])[0, 0] > 0.5]
    assert all(score < proposals[0].score for score in square_scores)


def test_cached_candidates_give_the_same_proposals_without_embedding_them_again(extractor):
    index = red_discs_confirmed_green_square_rejected(extractor)
    unseen = scene([(120, 35, 17)], [(25, 60, 28)])
    computed = propose_regions(unseen, label_index=index, extractor=extractor, top_k=5)

    cached = frame_candidates(unseen, extractor=extractor)
    embedded = []

    class Counting:
        dim = extractor.dim

        def embed_crops(self, rgb, boxes):
            embedded.append(len(boxes))
            return extractor.embed_crops(rgb, boxes)

    reused = propose_regions(unseen, label_index=index, extractor=Counting(), candidates=cached, top_k=5)

    assert embedded == []  # nothing but candidates here, and their embeddings were cached
    assert [p.box for p in reused] == [p.box for p in computed]
    assert np.allclose([p.score for p in reused], [p.score for p in computed], atol=1e-5)


def test_exemplars_find_every_copy_of_a_confirmed_object_in_a_crowded_scene():
    # Touching discs merge into one segment; one confirmed disc finds each copy.
    discs = [(20 + 24 * i, 30 + 40 * row, 11) for i in range(6) for row in range(2)]
    crowded = scene(discs, [])
    example = scene([(40, 40, 11)], [])[29:52, 29:52]

    boxes, scores, labels = exemplar_boxes(crowded, [(example, RED)])

    truth = np.array([disc_box(*disc) for disc in discs], np.float32)
    assert (iou_matrix(truth, boxes).max(axis=1) >= 0.5).mean() >= 0.9
    assert (labels == RED).all() and (scores > 0.55).all()
    proposals = propose_regions(crowded, exemplars=[(example, RED)], top_k=20)
    found = [p for p in proposals if p.source == "exemplar"]
    assert len(found) >= 10 and all(p.suggestions[0].label_id == RED for p in found)


def test_an_exemplar_scores_a_copy_of_its_colour_above_a_look_alike_of_another():
    # Correlation sees one pattern in both tints; the colour check tells them apart.
    red, blue = tinted_patch(RED_TINT), tinted_patch(BLUE_TINT)
    frame = frame_with_patch(110, 80, blue, frame_with_patch(20, 20, red, smooth_background()))

    boxes, scores, _ = exemplar_boxes(frame, [(red, RED)])

    on_red = iou_matrix(boxes, [[20, 20, 44, 44]])[:, 0] > 0.7
    on_blue = iou_matrix(boxes, [[110, 80, 134, 104]])[:, 0] > 0.7
    assert on_red.any() and scores[on_red].max() > 0.7
    assert scores[on_blue].max(initial=0.0) < 0.3


def test_a_box_is_backed_only_by_a_box_of_another_source_in_the_same_place_and_named_by_the_surest():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 11], [0, 0, 10, 10.5], [50, 50, 60, 60], [50, 50, 70, 70], [0, 0, 10, 10.2]]
    sources = ["candidate", "candidate", "motion", "exemplar", "candidate", "exemplar"]
    labels = [BACKGROUND, BACKGROUND, BACKGROUND, RED, BACKGROUND, GREEN]
    confidence = [0.3, 0.2, 0.6, 0.9, 0.4, 0.5]

    backed, label, label_confidence = backing(boxes, sources, labels, confidence)

    # Two segments on one place do not back each other; a moving blob and a template match there
    # back both, and the match names them; the other match overlaps a segment at IoU 0.25 only.
    assert backed.tolist() == [True, True, True, False, False, True]
    assert label.tolist() == [GREEN, GREEN, GREEN, BACKGROUND, BACKGROUND, BACKGROUND]
    assert label_confidence[:3].tolist() == pytest.approx([0.5] * 3)
    loose = backing(boxes, sources, labels, confidence, iou_threshold=0.2)
    assert loose[0].all() and loose[1][4] == RED
    assert backing(boxes[:2], sources[:2], labels[:2], confidence[:2])[0].tolist() == [False, False]
    assert backing([], [], [], [])[0].tolist() == []


def test_a_box_another_source_found_too_is_marked_backed_only_where_nothing_is_followed():
    # A segment and a detection on the one disc back each other; the detection on bare
    # background has nothing beside it. Beside followed boxes nothing is marked: there the
    # other sources' boxes are mostly the followed objects again.
    image = scene([(30, 30, 14)], [])
    on_disc = np.array(disc_box(30, 30, 14), np.float32)

    def detector(rgb):
        boxes = np.array([on_disc, [100, 60, 140, 100]], np.float32)
        return boxes, np.array([0.99, 0.9], np.float32), np.array([5, 5])

    proposals = propose_regions(image, detector=detector)

    on_it = iou_matrix(np.array([p.box for p in proposals], np.float32), [on_disc])[:, 0] >= 0.6
    assert on_it.any() and all(p.backed for p, here in zip(proposals, on_it) if here)
    bare = [p for p in proposals if p.box == (100.0, 60.0, 140.0, 100.0)]
    assert len(bare) == 1 and not bare[0].backed
    followed = propose_regions(image, neighbours=[(image, on_disc[None], np.array([5]))], detector=detector)
    assert any(p.source == "propagation" for p in followed) and not any(p.backed for p in followed)


def test_a_segment_a_detection_backs_takes_the_detections_label():
    # The segment outscores the unsure detection on the disc and is kept; the detection names it.
    image = scene([(30, 30, 14)], [])
    on_disc = np.array(disc_box(30, 30, 14), np.float32)

    def unsure(rgb):
        return on_disc[None], np.array([0.05], np.float32), np.array([5])

    kept = [p for p in propose_regions(image, detector=unsure)
            if iou_matrix([p.box], [on_disc])[0, 0] >= 0.6]

    assert [(p.source, p.backed, p.label_id) for p in kept] == [("candidate", True, 5)]


def test_propose_regions_uses_the_detector_hook():
    image = scene([(30, 30, 14)], [])

    def detector(rgb):
        return np.array([[100, 60, 140, 100]], np.float32), np.array([0.99], np.float32), np.array([5])

    proposals = propose_regions(image, detector=detector)

    detected = [p for p in proposals if p.source == "detector"]
    assert len(detected) == 1 and detected[0].box == (100.0, 60.0, 140.0, 100.0)
    assert detected[0].suggestions[0].label_id == 5
    assert proposals[0] is detected[0]


def test_of_two_overlapping_boxes_the_likelier_stays_when_the_caller_knows_chances():
    # Raw scores of different sources are on different scales: here the followed box's
    # beats the detection on the same object, but the project's history (the caller's
    # calibrated chances) says this detector is right more often; then the detection stays.
    background, patch = smooth_background(), textured_patch()
    neighbour = frame_with_patch(40, 40, patch, background)
    current = frame_with_patch(46, 43, patch, background)
    followed = [(neighbour, np.array([[40, 40, 70, 70]], np.float32), np.array([7]))]

    def detector(rgb):
        return np.array([[45, 42, 75, 72]], np.float32), np.array([0.5], np.float32), np.array([5])

    def chance(sources, scores, boxes, labels):
        return np.where(sources == "detector", 0.9, 0.3) * np.ones_like(scores)

    raw = propose_regions(current, neighbours=followed, detector=detector)
    calibrated = propose_regions(current, neighbours=followed, detector=detector, chance=chance)

    on_object = [[46, 43, 76, 73]]
    assert [p.source for p in raw if iou_matrix([p.box], on_object)[0, 0] > 0.5] == ["propagation"]
    assert [p.source for p in calibrated if iou_matrix([p.box], on_object)[0, 0] > 0.5] == ["detector"]
    assert calibrated[0].source == "detector" and calibrated[0].suggestions[0].label_id == 5


def test_between_labelled_frames_on_either_side_an_object_both_lose_is_proposed_on_the_line_between_them():
    # The patch crosses the frame at a steady pace. In the frame proposed for it is hidden, and a
    # look-alike stands near each labelled place, so each side follows its own look-alike; the
    # object is where the line between its two labelled boxes says, with their label.
    background, patch = smooth_background(), textured_patch()
    before, after = frame_with_patch(10, 40, patch, background), frame_with_patch(110, 40, patch, background)
    current = frame_with_patch(120, 40, patch, frame_with_patch(0, 40, patch, background))
    neighbours = [
        (before, np.array([[10, 40, 40, 70]], np.float32), np.array([7]), 1.0, (), False),
        (after, np.array([[110, 40, 140, 70]], np.float32), np.array([7]), 1.0, (), True),
    ]
    nothing = FrameCandidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    proposals = propose_regions(current, neighbours=neighbours, candidates=nothing)
    unknown_sides = propose_regions(current, neighbours=[n[:5] for n in neighbours], candidates=nothing)

    between = [p for p in proposals if p.source == "interpolation"]
    assert [tuple(round(v) for v in p.box) for p in between] == [(60, 40, 90, 70)]
    assert between[0].suggestions[0].label_id == 7
    assert sorted(p.source for p in proposals) == ["interpolation", "propagation", "propagation"]
    assert {p.source for p in unknown_sides} == {"propagation"}  # which side is which is not known
