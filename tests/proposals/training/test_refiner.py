import functools

import numpy as np
import pytest
import torch

from proposals.boxes import edge_moves, iou_matrix, moved_boxes, paired_iou
from proposals.regions import propose_regions
from proposals.training.checkpoints import save_checkpoint
from proposals.training.data import TrainingFrame
from proposals.training.refiner import (CROP_SIDE, MIN_BOX_SIDE, SURE_CONFIDENCE, SURE_PULL, box_crop,
                                        evaluate_box_refiner, evaluate_on_followed, jittered_boxes, load_box_refiner,
                                        refine_boxes, save_box_refiner, train_box_refiner, training_pairs)
from tests.proposals.training.stills import training_stills

CLASSES = ("food.fruit.apple", "food.dish.dessert", "food.fruit.banana")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Sixteen 192x144 stills, three objects each, every object boxed."""
    return training_stills(tmp_path_factory.mktemp("stills"), 16, label_ids=dict.fromkeys(CLASSES, 0), seed=5,
                           width=192, height=144, objects_per_image=3)


@pytest.fixture(scope="module")
def trained(frames):
    return train_box_refiner(frames[:12], steps=300, seed=0)


def test_edge_moves_lead_back_to_the_truth():
    boxes = np.array([[10, 20, 50, 80], [0, 0, 8, 4]], np.float32)
    truths = np.array([[12, 18, 55, 70], [1, 1, 9, 5]], np.float32)
    assert np.allclose(moved_boxes(boxes, edge_moves(boxes, truths), 1.0), truths)
    assert np.allclose(moved_boxes(boxes, edge_moves(boxes, truths), 0.5), (boxes + truths) / 2)


def test_crop_puts_the_box_in_the_middle_half():
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:80, 10:50] = 255
    crop = box_crop(image, (10, 20, 50, 80))
    quarter = CROP_SIDE // 4
    assert crop.shape == (CROP_SIDE, CROP_SIDE, 3)
    assert crop[quarter + 1:-quarter - 1, quarter + 1:-quarter - 1].min() == 255
    assert crop[:quarter - 1].max() == 0 and crop[:, :quarter - 1].max() == 0


def test_training_pairs_are_jittered_boxes_and_their_mirrors(frames):
    crops, moves = training_pairs(frames[:2], np.random.default_rng(0), per_box=5)
    boxes = sum(len(frame.boxes) for frame in frames[:2])
    assert crops.shape == (2 * 5 * boxes, CROP_SIDE, CROP_SIDE, 3) and moves.shape == (2 * 5 * boxes, 4)
    half = len(crops) // 2
    assert np.array_equal(crops[half:], crops[:half, :, ::-1])
    assert np.allclose(moves[half:, 0], -moves[:half, 2]) and np.allclose(moves[half:, 1], moves[:half, 1])
    assert np.abs(moves).max() > 0.05  # the boxes were really moved


def test_the_refiner_learns_to_put_moved_boxes_back_on_unseen_frames(trained, frames):
    assert trained.loss_curve[-1] < trained.loss_curve[0] / 2
    score = evaluate_box_refiner(trained.refiner, frames[12:], seed=1)
    unrefined = evaluate_box_refiner(None, frames[12:], seed=1)
    assert score.boxes == unrefined.boxes > 0
    assert unrefined.good_after == unrefined.good_before == score.good_before
    assert score.helps and score.good_after > score.good_before + 0.2
    assert score.mean_iou_after > unrefined.mean_iou_after


def test_followed_boxes_are_judged_in_a_persons_seconds(trained, frames):
    """Boxes already on their objects cannot be made cheaper, boxes well off them can; a frame
    with nothing followed says nothing about a refiner."""
    unsure = [np.zeros(len(frame.boxes)) for frame in frames[12:]]
    on = [(frame.image, frame.boxes, confidence, frame.boxes) for frame, confidence in zip(frames[12:], unsure)]
    off = [(frame.image, jittered_boxes(frame.boxes, np.random.default_rng(3), 1), confidence, frame.boxes)
           for frame, confidence in zip(frames[12:], unsure)]
    objects = sum(len(frame.boxes) for frame in frames[12:])
    exact = evaluate_on_followed(trained.refiner, on)
    assert exact.boxes == objects and exact.seconds_before == 1.5 * objects
    assert exact.seconds_after >= exact.seconds_before
    moved = evaluate_on_followed(trained.refiner, off)
    assert moved.no_worse and moved.seconds_after < moved.seconds_before - objects
    empty = (frames[12].image, np.zeros((0, 4)), np.zeros(0), frames[12].boxes)
    nothing = evaluate_on_followed(trained.refiner, [empty])
    assert nothing.boxes == nothing.seconds_before == nothing.seconds_after == 0 and not nothing.no_worse
    assert evaluate_on_followed(trained.refiner, on + [empty]) == exact


def test_boxes_the_tracker_is_sure_of_move_less(trained, frames):
    """A box followed with SURE_CONFIDENCE or more moves SURE_PULL of the predicted way, not
    REFINE_PULL: on boxes already on their objects, every move is a loss, and it is smaller."""
    sure_ious, unsure_ious = [], []
    for frame in frames[12:]:
        count = len(frame.boxes)
        sure = refine_boxes(trained.refiner, frame.image, frame.boxes, np.full(count, SURE_CONFIDENCE))
        unsure = refine_boxes(trained.refiner, frame.image, frame.boxes, np.full(count, SURE_CONFIDENCE - 0.01))
        assert np.array_equal(sure, refine_boxes(trained.refiner, frame.image, frame.boxes, pull=SURE_PULL))
        assert np.array_equal(unsure, refine_boxes(trained.refiner, frame.image, frame.boxes))
        mixed = refine_boxes(trained.refiner, frame.image, frame.boxes, np.arange(count) % 2)
        assert np.array_equal(mixed[1::2], sure[1::2]) and np.array_equal(mixed[::2], unsure[::2])
        sure_ious.append(paired_iou(sure, frame.boxes))
        unsure_ious.append(paired_iou(unsure, frame.boxes))
    assert np.concatenate(sure_ious).mean() > np.concatenate(unsure_ious).mean()


def test_training_is_deterministic_with_a_seed(frames):
    first = train_box_refiner(frames[:2], steps=3, seed=4)
    second = train_box_refiner(frames[:2], steps=3, seed=4)
    other = train_box_refiner(frames[:2], steps=3, seed=5)
    assert first.loss_curve == second.loss_curve
    for key, value in first.refiner.state_dict().items():
        assert torch.equal(value, second.refiner.state_dict()[key])
    assert first.loss_curve != other.loss_curve


def test_boxes_too_small_to_judge_stay_where_they_are(trained, frames):
    boxes = np.array([[5, 5, 5 + MIN_BOX_SIDE - 1, 30], [20, 20, 60, 60]], np.float32)
    refined = refine_boxes(trained.refiner, frames[0].image, boxes)
    assert np.array_equal(refined[0], boxes[0]) and not np.array_equal(refined[1], boxes[1])
    assert refine_boxes(trained.refiner, frames[0].image, np.zeros((0, 4))).shape == (0, 4)


def test_nothing_to_learn_from_is_refused(frames):
    empty = TrainingFrame(0, frames[0].image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), complete=True)
    with pytest.raises(ValueError, match="no confirmed boxes"):
        train_box_refiner([empty], steps=1, seed=0)


def test_checkpoint_round_trip_refines_the_same_and_refuses_other_kinds(trained, frames, tmp_path):
    path = save_box_refiner(trained.refiner, tmp_path / "refiner.pt", run_id=3)
    boxes = jittered_boxes(frames[13].boxes, np.random.default_rng(2), 2)
    assert np.array_equal(refine_boxes(load_box_refiner(path), frames[13].image, boxes),
                          refine_boxes(trained.refiner, frames[13].image, boxes))
    save_checkpoint({"kind": "detector", "state_dict": {}}, tmp_path / "detector.pt")
    with pytest.raises(ValueError, match="expected 'box_refiner'"):
        load_box_refiner(tmp_path / "detector.pt")


def test_propose_regions_refines_the_followed_boxes_or_where_none_are_the_others(frames):
    """Beside a neighbour the refiner sees the boxes followed from it, with the tracker's
    confidence, and nothing else; with no neighbour it sees every box proposed, without one.
    What it returns is proposed."""
    calls = []

    def refiner(rgb, boxes, confidence):
        calls.append((np.array(boxes), confidence))
        return np.asarray(boxes, np.float32) + np.float32([3, 3, 3, 3])

    frame = frames[0]
    labels = np.arange(1, len(frame.boxes) + 1)
    kwargs = dict(neighbours=[(frame.image, frame.boxes, labels)], top_k=50)
    plain = propose_regions(frame.image, **kwargs)
    refined = propose_regions(frame.image, refiner=refiner, **kwargs)
    assert len(calls) == 1
    followed_in, followed_confidence = calls.pop()
    assert len(followed_in) == len(frame.boxes) and len(followed_confidence) == len(frame.boxes)
    followed = {p.suggestions[0].label_id: p.box for p in plain if p.source == "propagation"}
    moved = {p.suggestions[0].label_id: p.box for p in refined if p.source == "propagation"}
    assert followed.keys() == moved.keys() and followed
    for label, box in followed.items():
        assert moved[label] != box
    pixels = {p.box for p in plain if p.source != "propagation"}
    assert pixels and pixels == {p.box for p in refined if p.source != "propagation"}

    alone = propose_regions(frame.image, refiner=refiner, top_k=50)
    (others_in, others_confidence), = calls
    assert others_confidence is None and len(others_in)
    height, width = frame.image.shape[:2]
    shifted = {tuple(float(v) for v in box) for box in np.minimum(others_in + 3, [width, height, width, height])}
    assert alone and all(p.box in shifted for p in alone)


def test_a_trained_refiner_brings_the_pixels_candidates_nearer_their_objects(trained, frames):
    """On stills it never saw, with nothing followed, the class-agnostic candidates proposed
    (segments of the pixels, often a shadow wider or a part short) are moved by a refiner learned
    from other stills' boxes: more objects get a box a person accepts as it is."""
    def best_per_truth(proposals, truths):
        return iou_matrix(truths, np.array([p.box for p in proposals], np.float32).reshape(-1, 4)).max(axis=1)

    before, after = [], []
    for frame in frames[12:]:
        before.append(best_per_truth(propose_regions(frame.image, top_k=50), frame.boxes))
        refiner = functools.partial(refine_boxes, trained.refiner)
        after.append(best_per_truth(propose_regions(frame.image, refiner=refiner, top_k=50), frame.boxes))
    before, after = np.concatenate(before), np.concatenate(after)
    assert np.mean(after >= 0.7) > np.mean(before >= 0.7)
    assert after.mean() > before.mean()
