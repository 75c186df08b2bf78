"""One human-readable size for the CLI and the window, in SI units as the Hub shows them."""

from myvlm_desktop.sizes import human_size


def test_sizes_are_si():
    assert human_size(288_600_000) == "288.6 MB"
    assert human_size(513_000_000) == "513.0 MB"
    assert human_size(1_020_000_000) == "1.0 GB"
    assert human_size(999) == "999 B" and human_size(1000) == "1 KB"
    assert human_size(0) == human_size(None) == ""
