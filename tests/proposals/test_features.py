import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from proposals import features
from proposals.features import (FeatureConfig, FeatureExtractor, WeightsUnavailableError, get_extractor,
                                load_extractor, save_checkpoint)

SMALL = FeatureConfig(backbone="alexnet", weights="none", input_size=128, batch_size=4)


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor(SMALL, device="cpu")


def smooth_image(height=96, width=128, seed=0):
    """Low-frequency RGB image: resampling differences stay small, as on real photos."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * xs + rng.uniform(0.5, 2) * ys + rng.uniform()))
                for _ in range(3)]
    return ((np.stack(channels, axis=2) + 1) * 127.5).astype(np.uint8)


def test_alexnet_features_k3_at_224_is_1024_dims():
    extractor = FeatureExtractor(FeatureConfig(weights="none"), device="cpu")
    assert extractor.dim == 256 * 2 * 2
    assert extractor.is_random
    assert "random" in extractor.weights_description


def test_cells_are_average_pooled_by_default_and_max_pooled_on_request():
    # A trunk whose activation map is known: 1 channel, 6x6, one hot cell per 3x3 block.
    activations = torch.zeros(1, 1, 6, 6)
    activations[0, 0, 0, 0] = 9.0
    average = FeatureExtractor(FeatureConfig(weights="none"), device="cpu")
    maximum = FeatureExtractor(FeatureConfig(weights="none", pooling="max"), device="cpu")
    assert FeatureConfig().pooling == "avg"
    assert average._pool(activations).flatten().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert maximum._pool(activations).flatten().tolist() == [9.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        FeatureConfig(pooling="median")


def test_resnet_layer_is_configurable():
    extractor = FeatureExtractor(FeatureConfig(backbone="resnet18", layer="layer3", weights="none",
                                               input_size=64), device="cpu")
    assert extractor.dim == 256 * 1 * 1  # layer3 stride 16: 64 -> 4x4, pooled 3x3 -> 1x1


def test_unknown_layer_is_rejected():
    with pytest.raises(ValueError):
        FeatureConfig(backbone="resnet18", layer="features")


def test_embed_crops_shape_dtype_and_unit_norm(extractor):
    boxes = np.array([[0, 0, 50, 40], [10, 20, 120, 90], [30, 30, 31, 31]], dtype=np.float32)
    embeddings = extractor.embed_crops(smooth_image(), boxes)
    assert embeddings.shape == (3, extractor.dim) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)


def test_empty_inputs_give_empty_outputs(extractor):
    assert extractor.embed_crops(smooth_image(), np.zeros((0, 4), np.float32)).shape == (0, extractor.dim)
    assert extractor.embed_images([]).shape == (0, extractor.dim)


def test_random_init_is_deterministic_across_instances(extractor):
    other = FeatureExtractor(SMALL, device="cpu")
    image = smooth_image()
    np.testing.assert_array_equal(extractor.embed_images([image]), other.embed_images([image]))


def test_batched_equals_one_by_one(extractor):
    image = smooth_image()
    boxes = np.array([[0, 0, 64, 64], [32, 16, 128, 96], [5, 5, 60, 90], [70, 0, 128, 50], [0, 40, 40, 96]],
                     dtype=np.float32)  # 5 boxes with batch_size 4: two batches
    batched = extractor.embed_crops(image, boxes)
    single = np.concatenate([extractor.embed_crops(image, box[None]) for box in boxes])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_image_embedding_equals_full_box_crop(extractor):
    image = smooth_image()
    whole = extractor.embed_images([image])
    crop = extractor.embed_crops(image, np.array([[0, 0, 128, 96]], np.float32))
    np.testing.assert_allclose(whole, crop, atol=1e-6)


@pytest.mark.parametrize("box", [(16, 8, 80, 72), (10, 10, 118, 90)], ids=["upscale", "downscale-ish"])
def test_crop_embedding_matches_cropped_and_resized_image(extractor, box):
    image = smooth_image()
    x0, y0, x1, y1 = box
    crop = torch.from_numpy(image[y0:y1, x0:x1]).permute(2, 0, 1)[None].float()
    resized = F.interpolate(crop, size=(128, 128), mode="bilinear", antialias=True, align_corners=False)
    resized_image = resized[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    from_crop = extractor.embed_crops(image, np.array([box], np.float32))[0]
    from_resized = extractor.embed_images([resized_image])[0]
    assert float(from_crop @ from_resized) > 0.99
    other_region = extractor.embed_crops(image, np.array([[60, 40, 128, 96]], np.float32))[0]
    assert float(from_crop @ from_resized) > float(from_crop @ other_region)


def test_rejects_non_uint8_images(extractor):
    with pytest.raises(ValueError):
        extractor.embed_images([np.zeros((10, 10, 3), np.float32)])


def test_checkpoint_round_trip(tmp_path, extractor):
    path = tmp_path / "backbone.pt"
    save_checkpoint(extractor, path)
    assert [p.name for p in tmp_path.iterdir()] == ["backbone.pt"]  # no temp file left behind
    loaded = FeatureExtractor(FeatureConfig(backbone="alexnet", weights=str(path), input_size=128), device="cpu")
    assert not loaded.is_random and str(path) in loaded.weights_description
    image = smooth_image(seed=3)
    np.testing.assert_allclose(loaded.embed_images([image]), extractor.embed_images([image]), atol=1e-6)


def test_checkpoint_changes_embeddings_when_weights_differ(tmp_path, extractor):
    altered = FeatureExtractor(SMALL, device="cpu")
    with torch.no_grad():
        altered.trunk.features[0].weight.mul_(-1)
    path = tmp_path / "altered.pt"
    save_checkpoint(altered, path)
    loaded = FeatureExtractor(FeatureConfig(weights=str(path), input_size=128), device="cpu")
    image = smooth_image()
    assert not np.allclose(loaded.embed_images([image]), extractor.embed_images([image]), atol=1e-3)


def test_checkpoint_for_another_backbone_is_rejected(tmp_path, extractor):
    path = tmp_path / "alexnet.pt"
    save_checkpoint(extractor, path)
    with pytest.raises(ValueError):
        FeatureExtractor(FeatureConfig(backbone="resnet18", weights=str(path), input_size=64), device="cpu")


def _offline(*args, **kwargs):
    raise OSError("network unreachable")


def test_imagenet_without_network_raises_clear_error(monkeypatch):
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", _offline)
    with pytest.raises(WeightsUnavailableError, match="ImageNet weights for alexnet"):
        FeatureExtractor(FeatureConfig(input_size=128), device="cpu")


def test_load_extractor_falls_back_to_random_and_says_so(monkeypatch):
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", _offline)
    extractor = load_extractor(FeatureConfig(input_size=128), fallback_to_random=True, device="cpu")
    assert extractor.is_random
    assert "ImageNet weights unavailable" in extractor.weights_description


def test_get_extractor_caches_per_config():
    features.get_extractor.cache_clear()
    assert get_extractor(SMALL) is get_extractor(SMALL)
    assert get_extractor(SMALL) is not get_extractor(FeatureConfig(weights="none", input_size=128, pool_kernel=2))


def test_sequential_layer_prefix_is_supported():
    extractor = FeatureExtractor(FeatureConfig(layer="features.9", weights="none", input_size=128), device="cpu")
    assert extractor.dim == 256 * 2 * 2  # conv4 output at 7x7, pooled 3x3 -> 2x2
    with pytest.raises(ValueError):
        FeatureExtractor(FeatureConfig(layer="features.99", weights="none", input_size=128), device="cpu")


def test_library_imports_no_web_stack():
    code = ("import sys, proposals.types, proposals.features, proposals.index, proposals.labels, "
            "proposals.evaluation; banned = {'django', 'rest_framework', 'celery', 'labeller', 'workers'}; "
            "print(sorted(banned & {name.split('.')[0] for name in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
