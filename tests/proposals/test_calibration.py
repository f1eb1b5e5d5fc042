import numpy as np
import pytest

from proposals.calibration import (BOX_FEATURES, SHAPE_MIN_EACH, ActionCosts, box_features, distinct_sizes,
                                   fit_calibration, fit_shape_adjustment, followed_cover, label_surplus,
                                   lost_object_matches, relative_log_sizes, select_shown, size_distance)


def test_without_history_the_chance_is_the_prior():
    calibration = fit_calibration([], [], prior=0.2)
    assert calibration.decisions == 0
    assert np.allclose(calibration.probability([0.0, 0.5, 1.0]), 0.2)


def test_the_fitted_chance_follows_the_history_and_never_falls_as_the_score_rises():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 2000)
    useful = rng.uniform(0, 1, 2000) < scores**2  # the true chance is score squared
    calibration = fit_calibration(scores, useful, prior=0.1)
    grid = np.linspace(0.05, 0.95, 19)
    chance = calibration.probability(grid)
    assert np.all(np.diff(chance) >= 0)
    assert np.abs(chance - grid**2).max() < 0.1


def test_isotonic_pooling_repairs_a_history_that_contradicts_the_score_order():
    # Low scores were useful more often than middle ones: the fit pools them, it never inverts.
    scores = np.repeat([0.1, 0.5, 0.9], 40)
    useful = np.concatenate([np.ones(20), np.zeros(20), np.zeros(40), np.ones(40)]).astype(bool)
    chance = fit_calibration(scores, useful, prior=0.5).probability([0.1, 0.5, 0.9])
    assert chance[0] == pytest.approx(chance[1]) and chance[1] < 0.5 < chance[2]


def test_below_the_lowest_bin_the_chance_keeps_falling_with_the_score():
    # Followed boxes: nearly all score high and are kept; the few weak ones share the lowest
    # bin with middling ones. Boxes scoring below that bin's centre are kept far less often
    # than its rate, so a flat tail would show them all.
    rng = np.random.default_rng(3)
    scores = np.concatenate([rng.uniform(0.6, 0.9, 200), rng.uniform(0.05, 0.5, 20)])
    useful = np.concatenate([np.ones(200), scores[200:] > 0.3]).astype(bool)
    calibration = fit_calibration(scores, useful, prior=0.5)
    lowest = calibration.knots[0]
    assert 0.2 < lowest < 0.5 and calibration.values[0] > 0.3
    chance = calibration.probability([0.05, 0.15, lowest, 0.95, 1.0])
    assert chance[0] < chance[1] < chance[2] == pytest.approx(calibration.values[0])
    assert chance[0] < ActionCosts().break_even(0.0, 0.0)
    # Above the highest centre it stays at the highest rate: no history vouches for more.
    assert chance[3] == pytest.approx(calibration.values[-1]) == pytest.approx(chance[4])


def test_a_short_history_already_tells_strong_proposals_from_weak_ones():
    # One frame's worth of decisions: only the best-scored few were kept. Bins would need
    # more history than this for a second bin, and one bin shows all of them or none.
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, 28)
    useful = scores > 0.8
    assert 2 <= useful.sum() <= 8
    chance = fit_calibration(scores, useful, prior=0.1).probability([0.1, 0.5, 0.9])
    break_even = ActionCosts().break_even(0.0, 0.0)
    assert chance[0] < 0.05 < break_even < chance[2]
    assert chance[0] <= chance[1] <= chance[2]


def test_a_short_history_that_contradicts_the_score_order_gets_a_flat_chance():
    scores = np.linspace(0, 1, 30)
    chance = fit_calibration(scores, scores < 0.3, prior=0.2).probability([0.0, 0.5, 1.0])
    assert chance[0] == pytest.approx(chance[2])
    assert chance[0] == pytest.approx((9 + 2 * 0.2) / (30 + 2), abs=0.01)


def test_short_histories_lean_on_the_prior():
    chance = fit_calibration([0.9], [True], prior=0.1).probability([0.9])[0]
    assert 0.1 < chance < 0.5


@pytest.mark.parametrize(
    "label_wrong, box_loose, expected",
    [
        pytest.param(0.0, 0.0, 1.0 / (8.5 + 1.0), id="all-right"),
        pytest.param(1.0, 0.0, 1.0 / (5.5 + 1.0), id="labels-always-fixed"),
        pytest.param(1.0, 1.0, 1.0 / (1.5 + 1.0), id="labels-and-boxes-fixed"),
    ],
)
def test_the_break_even_chance_comes_from_the_action_costs(label_wrong, box_loose, expected):
    assert ActionCosts().break_even(label_wrong, box_loose) == pytest.approx(expected)


def test_only_proposals_worth_showing_are_shown_most_likely_first():
    shown = select_shown([0.05, 0.6, 0.2, 0.6, 0.11], 0.105, ranking=[0.9, 0.3, 0.5, 0.4, 0.1])
    assert shown.tolist() == [3, 1, 2, 4]
    assert select_shown([0.6, 0.7], 0.1, limit=1).tolist() == [1]
    # Each proposal against its own source's break-even.
    assert select_shown([0.2, 0.2, 0.3], [0.25, 0.1, 0.25]).tolist() == [2, 1]


def test_the_shape_adjustment_waits_for_a_history_of_both_kinds():
    shapes = box_features([[0, 0, 10, 10]] * 30, [[100, 100]] * 30)
    assert fit_shape_adjustment(np.full(30, 0.2), shapes, np.zeros(30, bool), prior=0.1) is None
    assert fit_shape_adjustment(np.full(5, 0.2), shapes[:5], [True, False] * 2 + [True], prior=0.1) is None
    assert fit_shape_adjustment(np.full(30, 0.2), shapes, [True, False] * 15, prior=0.1) is not None


def test_a_few_kept_boxes_among_many_are_too_few_to_move_the_chance_by_shape():
    # Forty decisions, the kept ones all small: one fewer kept box than the adjustment has
    # weights is no adjustment (the chance stays the score's); as many as its weights is one.
    rng = np.random.default_rng(3)
    small, large = [[0, 0, 12, 12]], [[0, 0, 60 + rng.uniform(0, 40), 60 + rng.uniform(0, 40)] for _ in range(40)]

    def history(kept: int):
        boxes = small * kept + large[:40 - kept]
        return np.full(40, 0.2), box_features(boxes, [[640, 360]] * 40), [True] * kept + [False] * (40 - kept)

    assert SHAPE_MIN_EACH == 2 + BOX_FEATURES
    assert fit_shape_adjustment(*history(SHAPE_MIN_EACH - 1), prior=0.1) is None
    adjustment = fit_shape_adjustment(*history(SHAPE_MIN_EACH), prior=0.1)
    assert adjustment is not None
    assert adjustment.probability([0.2], box_features(small, [[640, 360]]))[0] > 0.2


def test_box_features_are_the_log_share_of_the_frame_the_squared_log_aspect_the_cover_and_the_surplus():
    features = box_features([[0, 0, 20, 10], [0, 0, 10, 10]], [[100, 50], [100, 50]], [0.4, 0.0], [1.0, 0.0])
    share = np.log(200 / 5000)
    np.testing.assert_allclose(features[0], [share, share**2, np.log(2) ** 2, 0.4, 1.0])
    np.testing.assert_allclose(features[1, 2:], 0.0)
    np.testing.assert_allclose(box_features([[0, 0, 10, 10]], [[100, 50]])[0, 3:], 0.0)


def test_a_followed_box_is_surplus_where_a_likelier_followed_box_has_its_label():
    labels = [7, 7, 8, 7, 9, 9]
    scores = [0.3, 0.8, 0.3, 0.9, 0.5, 0.5]
    followed = [True, True, True, False, True, True]
    # the first is outscored by the second (the fourth, not followed, does not count); the
    # second and third have no likelier rival; of two equal scores the earlier is the likelier
    np.testing.assert_allclose(label_surplus(labels, scores, followed), [1, 0, 0, 0, 0, 1])
    np.testing.assert_allclose(label_surplus([-1, -1], [0.9, 0.3], [True, True]), [0, 0])  # no label, no rival
    assert label_surplus([], [], []).shape == (0,)


def test_followed_cover_is_the_largest_share_a_followed_box_covers_times_its_score():
    followed = [[0, 0, 100, 100], [200, 0, 300, 100]]
    boxes = [[50, 0, 150, 100], [210, 10, 230, 30], [400, 0, 450, 50], [0, 0, 100, 100]]
    cover = followed_cover(boxes, followed, [0.8, 0.5], own=[-1, -1, -1, 0])
    # half inside the first; wholly inside the second (score 0.5); in free space; the first
    # followed box itself, which no other covers
    np.testing.assert_allclose(cover, [0.4, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(followed_cover(boxes, np.zeros((0, 4)), []), 0.0)


def test_the_history_teaches_that_candidates_inside_followed_objects_are_rarely_kept():
    # Same scores, same shapes: only the cover tells the kept candidates (in free space)
    # from the rejected ones (parts of objects a followed box already claims).
    rng = np.random.default_rng(5)
    boxes = [[0, 0, 40 + rng.uniform(-4, 4), 40 + rng.uniform(-4, 4)] for _ in range(200)]
    cover = np.where(np.arange(200) % 2 == 0, 0.0, rng.uniform(0.5, 0.9, 200))
    useful = (cover == 0) & (rng.uniform(0, 1, 200) < 0.4)
    base = np.full(200, useful.mean())
    adjustment = fit_shape_adjustment(base, box_features(boxes, [[640, 360]] * 200, cover), useful, prior=0.1)

    free, inside = adjustment.probability([0.2, 0.2], box_features([[0, 0, 40, 40]] * 2, [[640, 360]] * 2, [0.0, 0.7]))
    assert free > 0.3 > 0.05 > inside


def test_boxes_unlike_any_in_a_one_size_history_are_not_pushed_to_certainty():
    # Every box of the history had one size and almost one aspect; a box of another shape
    # is outside what it says, and keeps about the chance its score gives it.
    rng = np.random.default_rng(2)
    boxes = [[0, 0, 40, 40 + rng.uniform(0, 1e-3)] for _ in range(60)]
    shapes = box_features(boxes, [[640, 360]] * 60)
    base = rng.uniform(0.05, 0.6, 60)
    adjustment = fit_shape_adjustment(base, shapes, rng.uniform(0, 1, 60) < base, prior=0.1)

    other = box_features([[0, 0, 300, 10], [0, 0, 40, 40]], [[640, 360]] * 2)
    chance = adjustment.probability([0.3, 0.3], other)

    assert 0.1 < chance[0] < 0.6
    assert chance[0] == pytest.approx(chance[1], abs=0.15)


def test_a_boxs_size_is_compared_as_shares_of_its_frame_so_resolutions_share_sizes():
    small = relative_log_sizes([[0, 0, 64, 36]], (640, 360))
    large = relative_log_sizes([[100, 100, 292, 208]], (1920, 1080))

    assert small == pytest.approx(large)
    assert small[0] == pytest.approx(np.log([0.1, 0.1]))


def test_boxes_of_one_size_in_other_places_count_as_one_size():
    sizes = relative_log_sizes([[0, 0, 60, 40], [5, 5, 65, 45], [0, 0, 300, 130]], (640, 360))

    assert len(distinct_sizes(sizes)) == 2


def test_the_size_distance_is_to_the_nearest_known_size_in_log_width_and_height():
    known = distinct_sizes(relative_log_sizes([[0, 0, 60, 40], [0, 0, 20, 100]], (640, 360)))
    boxes = [[0, 0, 60, 40], [0, 0, 90, 40], [0, 0, 20, 90], [0, 0, 300, 130]]

    distance = size_distance(relative_log_sizes(boxes, (640, 360)), known)

    assert distance[0] == pytest.approx(0.0, abs=0.02)
    assert distance[1] == pytest.approx(np.log(1.5), abs=0.02)  # half as wide again
    assert distance[2] == pytest.approx(abs(np.log(0.9)), abs=0.02)  # the nearer of the two
    assert distance[3] > 1.0
    assert np.isinf(size_distance(relative_log_sizes(boxes, (640, 360)), np.zeros((0, 2)))).all()


def lost_matches(boxes, scores, labels, *, pixels=None, cover=None, followed=((), ()), carried=()):
    n = len(boxes)
    # Followed boxes far apart unless given: each holds an object of its own.
    apart = [[100.0 * i, 0, 100.0 * i + 50, 50] for i in range(len(followed[0]))]
    followed_boxes = followed[2] if len(followed) > 2 else apart
    return lost_object_matches(
        boxes, scores, labels, [True] * n if pixels is None else pixels, [0.0] * n if cover is None else cover,
        (followed[0], followed[1], followed_boxes), carried, (640, 360),
    ).tolist()


def test_a_pixels_box_may_be_a_lost_object_where_the_labelled_frames_carry_more_of_its_label_than_are_followed():
    hands = ([7, 7, 3], [[100, 100, 160, 180], [300, 200, 356, 283], [10, 10, 50, 50]])
    hand_sized = [400, 50, 458, 132]

    # Two hands were labelled a second before, one is followed surely: the other is missing.
    assert lost_matches([hand_sized], [0.7], [7], followed=([7, 3], [0.8, 0.9]), carried=[hands]) == [True]
    # Both followed surely: nothing missing. A weak followed box holds nothing.
    assert lost_matches([hand_sized], [0.7], [7], followed=([7, 7], [0.8, 0.5]), carried=[hands]) == [False]
    assert lost_matches([hand_sized], [0.7], [7], followed=([7, 7], [0.8, 0.2]), carried=[hands]) == [True]
    # The frame on the other side carries one hand: the more of the two frames counts.
    one_hand = ([7], [[120, 100, 180, 180]])
    assert lost_matches([hand_sized], [0.7], [7], followed=([7], [0.8]), carried=[one_hand, hands]) == [True]
    assert lost_matches([hand_sized], [0.7], [7], followed=([7], [0.8]), carried=[one_hand]) == [False]
    # Not without labelled frames, not for another label, not for a box of another size, not
    # where followed boxes cover it, not for a box that is not the pixels'.
    assert lost_matches([hand_sized], [0.7], [7], followed=([7], [0.8]), carried=[]) == [False]
    assert lost_matches([hand_sized], [0.7], [5], followed=([7], [0.8]), carried=[hands]) == [False]
    assert lost_matches([[400, 50, 600, 132]], [0.7], [7], followed=([7], [0.8]), carried=[hands]) == [False]
    assert lost_matches([hand_sized], [0.7], [7], cover=[0.5], followed=([7], [0.8]), carried=[hands]) == [False]
    assert lost_matches([hand_sized], [0.7], [7], pixels=[False], followed=([7], [0.8]), carried=[hands]) == [False]


def test_only_as_many_boxes_as_objects_are_missing_may_be_them_the_best_scored():
    hands = ([7, 7], [[100, 100, 160, 180], [300, 200, 356, 283]])
    boxes = [[400, 50, 458, 132], [402, 52, 460, 134], [10, 200, 66, 280]]

    assert lost_matches(boxes, [0.5, 0.8, 0.6], [7, 7, 7], followed=([7], [0.9]), carried=[hands]) == [
        False, True, False]
    assert lost_matches(boxes, [0.5, 0.8, 0.6], [7, 7, 7], followed=((), ()), carried=[hands]) == [
        False, True, True]


def test_a_followed_box_inside_a_surer_one_of_its_label_is_that_object_again_not_a_second_held():
    croissants = ([4, 4], [[150, 120, 220, 155], [40, 130, 110, 165]])
    blob = [[36, 132, 114, 170]]
    # The second followed croissant lies inside the first: one croissant held, one missing.
    twice = ([4, 4], [0.84, 0.35], [[153, 124, 217, 153], [180, 133, 215, 149]])
    apart = ([4, 4], [0.84, 0.35], [[153, 124, 217, 153], [300, 133, 335, 149]])

    assert lost_matches(blob, [0.8], [4], followed=twice, carried=[croissants]) == [True]
    assert lost_matches(blob, [0.8], [4], followed=apart, carried=[croissants]) == [False]
