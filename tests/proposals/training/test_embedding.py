import math

import numpy as np
import pytest
import torch

from proposals.features import FeatureConfig, FeatureExtractor, resample_boxes, save_checkpoint
from proposals.training.data import TrainingFrame
from proposals.training.embedding import (EmbeddingTrainingOptions, LabelledCrop, batch_hard_triplet_loss,
                                          crops_from_frames, embedding_spread, evaluate_embedding,
                                          train_embedding)

SMALL = FeatureConfig(backbone="alexnet", weights="none", input_size=96, pool_kernel=2, batch_size=8)
QUICK = EmbeddingTrainingOptions(steps=12, labels_per_batch=3, crops_per_label=3, learning_rate=1e-4)


def coloured_crops(count_per_label=6, seed=0):
    """Three labels: a red disc, a green square, a blue bar on grey noise, varying in size."""
    rng = np.random.default_rng(seed)
    crops = []
    for label, (colour, shape) in enumerate([((220, 30, 30), "disc"), ((30, 200, 40), "square"),
                                             ((40, 60, 230), "bar")]):
        for _ in range(count_per_label):
            size = int(rng.integers(24, 40))
            image = rng.integers(90, 140, (size + 16, size + 16, 3)).astype(np.uint8)
            ys, xs = np.mgrid[0:size, 0:size] - size / 2
            mask = {"disc": xs**2 + ys**2 < (size / 2) ** 2, "square": np.ones((size, size), bool),
                    "bar": np.abs(ys) < size / 6}[shape]
            image[8:8 + size, 8:8 + size][mask] = colour
            crops.append(LabelledCrop(image, np.array([8, 8, 8 + size, 8 + size], np.float32), label))
    return crops


def test_triplet_loss_is_soft_margin_on_euclidean_distances():
    embeddings = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest positive d=5, hardest negative d=1 -> softplus(4)
    # anchor 1: positive 5, negatives sqrt(9+9)=4.243, sqrt(9+4)=3.606 -> softplus(5-3.606)
    # anchor 2: positive 1, negatives 1 (to 0), 4.243 -> softplus(0)
    # anchor 3: positive 1, negatives 2, 3.606 -> softplus(-1)
    expected = np.mean([math.log1p(math.exp(v)) for v in (4.0, 5 - math.sqrt(13), 0.0, -1.0)])
    assert batch_hard_triplet_loss(embeddings, labels).item() == pytest.approx(expected, rel=1e-5)


def test_collapsed_embeddings_give_log_2_and_zero_spread():
    embeddings = torch.ones(6, 4) / 2
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert batch_hard_triplet_loss(embeddings, labels).item() == pytest.approx(math.log(2), abs=1e-5)
    assert embedding_spread(embeddings) == 0.0


def test_triplet_loss_has_finite_gradients_where_embeddings_coincide():
    embeddings = torch.ones(4, 3, requires_grad=True)
    batch_hard_triplet_loss(embeddings, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(embeddings.grad).all()


def test_training_path_embeds_like_the_extractor():
    extractor = FeatureExtractor(SMALL, device="cpu")
    crop = coloured_crops(count_per_label=1)[0]
    image = torch.from_numpy(crop.image).permute(2, 0, 1).unsqueeze(0).float()
    with torch.no_grad():
        trained_path = extractor.embed_tensor(resample_boxes(image, torch.from_numpy(crop.box[None]), 96))
    np.testing.assert_allclose(trained_path.numpy(), extractor.embed_crops(crop.image, crop.box[None]), atol=1e-6)


def test_crops_from_frames_keep_context_and_box():
    image = np.zeros((50, 80, 3), np.uint8)
    image[10:30, 20:40] = 255
    frame = TrainingFrame(1, image, np.array([[20, 10, 40, 30]], np.float32), np.array([5]), complete=False)
    (crop,) = crops_from_frames([frame], context=0.5)
    assert crop.label_id == 5
    assert crop.image.shape == (40, 40, 3)  # 20 px box + 10 px each side
    x0, y0, x1, y1 = crop.box.astype(int)
    assert (crop.image[y0:y1, x0:x1] == 255).all()


def test_short_training_lowers_the_loss_and_round_trips_through_a_checkpoint(tmp_path):
    crops = coloured_crops()
    options = EmbeddingTrainingOptions(steps=15, labels_per_batch=3, crops_per_label=3, learning_rate=3e-4)
    result = train_embedding(crops, SMALL, options, device="cpu")
    assert not result.collapsed, result.reason
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert np.mean(result.losses[-5:]) < math.log(2) - 0.05

    path = tmp_path / "embedding.pt"
    save_checkpoint(result.extractor, path, metadata={"steps": result.steps, "crops": len(crops)})
    loaded = FeatureExtractor(FeatureConfig(backbone="alexnet", weights=str(path), input_size=96, pool_kernel=2),
                              device="cpu")
    image, box = crops[0].image, crops[0].box[None]
    np.testing.assert_allclose(loaded.embed_crops(image, box), result.extractor.embed_crops(image, box), atol=1e-6)
    untrained = FeatureExtractor(SMALL, device="cpu")
    assert not np.allclose(untrained.embed_crops(image, box), loaded.embed_crops(image, box), atol=1e-4)
    assert torch.load(path, weights_only=True)["metadata"] == {"steps": 15, "crops": len(crops)}
    assert evaluate_embedding(loaded, crops) >= evaluate_embedding(untrained, crops)
    queries, references = crops[::2], crops[1::2]
    assert evaluate_embedding(loaded, queries, references) >= evaluate_embedding(untrained, queries, references)


def test_identical_crops_collapse_and_give_no_model():
    crop = coloured_crops(count_per_label=1)[0]
    crops = [LabelledCrop(crop.image, crop.box, label) for label in (0, 0, 0, 1, 1, 1)]
    options = EmbeddingTrainingOptions(steps=40, labels_per_batch=2, crops_per_label=3, box_jitter=0.0,
                                       horizontal_flip=False, colour_jitter=0.0, collapse_patience=4)
    result = train_embedding(crops, SMALL, options, device="cpu")
    assert result.collapsed
    assert result.extractor is None
    assert "collapsed" in result.reason
    assert result.steps == 4  # stopped as soon as the patience ran out


def test_a_huge_learning_rate_is_caught():
    options = EmbeddingTrainingOptions(steps=30, labels_per_batch=3, crops_per_label=3, learning_rate=1e4,
                                       collapse_patience=3)
    result = train_embedding(coloured_crops(), SMALL, options, device="cpu")
    assert result.collapsed, result.losses
    assert result.extractor is None
    assert result.steps < 30


def test_training_is_deterministic_with_a_seed():
    first = train_embedding(coloured_crops(), SMALL, QUICK, device="cpu")
    second = train_embedding(coloured_crops(), SMALL, QUICK, device="cpu")
    assert first.losses == second.losses


def test_needs_two_labels_with_two_crops():
    crops = coloured_crops(count_per_label=1)
    with pytest.raises(ValueError):
        train_embedding(crops, SMALL, QUICK, device="cpu")
