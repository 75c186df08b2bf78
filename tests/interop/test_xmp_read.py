"""Reading names from XMP: MWG and MP regions, person keywords, sidecars, and hostile packets."""

import math
import time

import pytest

from myvlm_desktop.interop import xmp
from tests.interop.xmpdata import mp, mwg, packet, tags


def test_mwg_centre_areas_become_top_left_boxes_in_both_xmp_forms():
    for as_elements in (False, True):
        names = xmp.parse(packet(mwg([("Alice", "Face", 0.5, 0.4, 0.2, 0.3), ("Rex", "Pet", 0.2, 0.8, 0.2, 0.2)],
                                     applied=(400, 300), as_elements=as_elements)))
        assert [(r.name, r.kind, r.source, r.applied_to) for r in names.regions] == [
            ("Alice", "person", "mwg", (400, 300)), ("Rex", "pet", "mwg", (400, 300))]
        assert names.regions[0].box == pytest.approx((0.4, 0.25, 0.6, 0.55))


def test_mp_rectangles_are_top_left_and_used_only_without_mwg():
    only_mp = xmp.parse(packet(mp([("Bob", 0.1, 0.2, 0.3, 0.4)])))
    assert [(r.name, r.source) for r in only_mp.regions] == [("Bob", "mp")]
    assert only_mp.regions[0].box == pytest.approx((0.1, 0.2, 0.4, 0.6))
    both = xmp.parse(packet(mp([("Bob", 0.1, 0.2, 0.3, 0.4)]), mwg([("Bob", "Face", 0.25, 0.4, 0.3, 0.4)])))
    assert [(r.name, r.source) for r in both.regions] == [("Bob", "mwg")]


def test_person_keywords_from_tag_trees_and_person_in_image():
    names = xmp.parse(packet(tags(digikam=["People/Alice", "Places/Paris", "People/Family/Bob", "Pets/Rex"],
                                  lightroom=["People|alice", "People|Carol", "Pets|rex"], persons=["Dave"])))
    assert names.keywords == ["Alice", "Bob", "Carol", "Dave"]  # "alice" is Alice; Paris is no person
    assert names.pets == ["Rex"]


def test_focus_and_unnamed_regions_name_nobody():
    names = xmp.parse(packet(mwg([("", "Face", 0.5, 0.5, 0.1, 0.1), ("AF point", "Focus", 0.5, 0.5, 0.1, 0.1)])))
    assert names.regions == []


def test_malformed_xml_is_an_error_with_a_reason():
    with pytest.raises(xmp.XmpError, match="malformed"):
        xmp.parse(packet(mwg([("Alice", "Face", 0.5, 0.5, 0.1, 0.1)]))[:-30])


def test_entity_bomb_is_refused_at_once():
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 if i > 1 else "") * 10}">' for i in range(1, 10))
            + ']><x:xmpmeta xmlns:x="adobe:ns:meta/">&lol9;</x:xmpmeta>')
    start = time.perf_counter()
    with pytest.raises(xmp.XmpError, match="refused"):
        xmp.parse(bomb)
    assert time.perf_counter() - start < 1.0


def test_huge_region_counts_are_capped_with_a_warning():
    regions = [(f"P{i}", "Face", 0.5, 0.5, 0.01, 0.01) for i in range(20_000)]
    names = xmp.parse(packet(mwg(regions)))
    assert len(names.regions) == xmp.MAX_REGIONS
    assert any("ignored" in w for w in names.warnings)


@pytest.mark.parametrize("area", [(math.nan, 0.5, 0.1, 0.1), (0.5, 0.5, -0.1, 0.1), (0.5, 0.5, 0.0, 0.1),
                                  (0.5, 0.5, 5.0, 0.1), (3.0, 0.5, 0.1, 0.1), (0.5, "inf", 0.1, 0.1),
                                  (0.5, "x", 0.1, 0.1)])
def test_nan_negative_and_outside_areas_are_skipped(area):
    names = xmp.parse(packet(mwg([("Bad", "Face", *area), ("Good", "Face", 0.5, 0.5, 0.2, 0.2)]),
                             mp([("Worse", math.nan, -1, 0.2, 0.2)])))
    assert [r.name for r in names.regions] == ["Good"]
    assert any("Bad" in w for w in names.warnings)


def test_applied_to_dimensions_and_orientation():
    region = xmp.Region("A", "person", (0.1, 0.2, 0.3, 0.4), "mwg", (400, 300))
    assert xmp.fit_box(region, 800, 600, 1) == region.box  # same shape, other size: normalised still fits
    stored = xmp.Region("A", "person", (0.1, 0.2, 0.3, 0.4), "mwg", (300, 400))  # written for the stored frame
    assert xmp.fit_box(stored, 400, 300, 6) == pytest.approx((0.6, 0.1, 0.8, 0.3))
    assert xmp.fit_box(stored, 400, 400, 1) is None  # contradicts the photo: dropped
    names = xmp.Names(regions=[stored])
    assert names.for_photo(500, 500) == [] and "does not fit" in names.warnings[0]


def test_sidecars_win_and_a_broken_one_is_a_warning(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"\xff\xd8" + packet(mwg([("Embedded", "Face", 0.5, 0.5, 0.2, 0.2)])).encode())
    assert [r.name for r in xmp.read_names(photo).regions] == ["Embedded"]
    (tmp_path / "p.xmp").write_text(packet(mwg([("Sidecar", "Face", 0.5, 0.5, 0.2, 0.2)]),
                                           tags(persons=["Extra"])))
    (tmp_path / "p.jpg.xmp").write_text("<x:xmpmeta><broken")
    names = xmp.read_names(photo)
    assert [r.name for r in names.regions] == ["Sidecar"] and names.keywords == ["Extra"]
    assert any(w.startswith("p.jpg.xmp: malformed") for w in names.warnings)


def test_name_variants_are_one_name():
    assert xmp.same_name("Zoé  Martin", "zoe\u0301 martin") and not xmp.same_name("Zoe", "Zoé")
