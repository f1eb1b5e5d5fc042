"""The names frames get inside an export."""

import pytest

from labeller.exports.writing import frame_file_name


@pytest.mark.parametrize(
    "original_name, duplicates, image_name, expected",
    [
        pytest.param("kitchen/a.png", set(), "o/1/p/2/frames/x.png", "kitchen/a.png", id="its-own-name"),
        pytest.param("../a.png", set(), "o/1/p/2/frames/x.png", "stills/7.png", id="unsafe-name-png"),
        pytest.param("a.png", {"a.png"}, "o/1/p/2/frames/x.png", "stills/7.png", id="shared-name-png"),
        pytest.param("", set(), "o/1/p/2/frames/x.jpg", "stills/7.jpg", id="no-name-jpeg"),
        pytest.param("../a.jpg", set(), "", "stills/7.jpg", id="no-stored-file-name"),
    ],
)
def test_a_still_named_from_its_id_keeps_the_suffix_of_its_stored_file(original_name, duplicates, image_name, expected):
    assert frame_file_name(7, None, 0, original_name, duplicates, image_name=image_name) == expected


def test_a_video_frame_is_named_by_where_it_came_from():
    assert frame_file_name(7, 3, 12, "", set(), image_name="o/1/frames/x.jpg") == "videos/3/000012.jpg"
