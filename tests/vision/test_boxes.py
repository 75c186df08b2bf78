"""The one IoU and box matching: overlap, no overlap, containment, boxes without area, one-to-one pairs."""

import pytest

from myvlm_desktop.vision.boxes import iou, match_boxes


def test_iou_of_overlapping_boxes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == iou((5, 0, 15, 10), (0, 0, 10, 10))


def test_iou_without_overlap_is_zero():
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges share no area


def test_iou_of_a_box_inside_another_is_the_area_ratio():
    assert iou((0, 0, 10, 10), (2, 2, 7, 7)) == pytest.approx(25 / 100)
    assert iou((2.5, 2.5, 7.5, 7.5), (0, 0, 10, 10)) == pytest.approx(0.25)


def test_a_box_without_area_overlaps_nothing():
    assert iou((5, 5, 5, 9), (0, 0, 10, 10)) == 0.0   # zero width, inside the other
    assert iou((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0     # two points: no division by zero
    assert iou((3, 3, 1, 1), (0, 0, 10, 10)) == 0.0   # corners swapped: no area either


def test_box_matching_is_one_to_one():
    old = [(0, 0, 10, 10), (100, 100, 120, 120), (0, 0, 11, 11)]
    new = [(1, 1, 11, 11), (300, 300, 310, 310)]
    assert match_boxes(old, new) == {2: 0}  # the better overlap wins; the other stays unmatched
    assert match_boxes(old, new, min_iou=0.9) == {}
    assert match_boxes([], new) == {} and match_boxes(old, []) == {}
