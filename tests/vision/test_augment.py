"""The one augmentation: MyVLM's rotation bound per training, brightness only for the concept embedding."""

import numpy as np
from PIL import Image

from myvlm_desktop.vision import augment


def draws(setting, count=400):
    rng = np.random.default_rng(0)
    return [augment.draw(rng, setting) for _ in range(count)]


def test_head_views_rotate_up_to_30_degrees_and_keep_brightness():
    got = draws(augment.HEAD)
    degrees = np.array([d for _, _, d in got])
    assert np.abs(degrees).max() <= 30 and np.abs(degrees).max() > 25
    assert {f for _, f, _ in got} == {1.0}
    assert 0.3 < np.mean([m for m, _, _ in got]) < 0.7


def test_embedding_views_rotate_up_to_45_degrees_with_brightness_0_6():
    got = draws(augment.EMBEDDING)
    degrees = np.array([d for _, _, d in got])
    factors = np.array([f for _, f, _ in got])
    assert np.abs(degrees).max() <= 45 and np.abs(degrees).max() > 40
    assert factors.min() >= 0.4 and factors.max() <= 1.6 and factors.max() - factors.min() > 1.0


def test_views_start_with_the_photo_and_repeat_with_the_seed():
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    first = augment.array_views(rgb, 5, seed=7)
    again = augment.array_views(rgb, 5, seed=7)
    other = augment.array_views(rgb, 5, seed=8)
    assert len(first) == 5 and (first[0] == rgb).all()
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first[1:], other[1:]))
    assert all(v.shape == rgb.shape for v in first)


def test_a_head_view_of_a_flat_photo_keeps_its_brightness_in_the_middle():
    flat = Image.new("RGB", (40, 40), (120, 120, 120))
    for view in augment.views(flat, 6, seed=3, setting=augment.HEAD)[1:]:
        assert view.getpixel((20, 20)) == (120, 120, 120)
    jittered = [v.getpixel((20, 20))[0] for v in augment.views(flat, 12, seed=3)[1:]]
    assert len(set(jittered)) > 3
