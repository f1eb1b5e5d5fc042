"""bench/assist.py --next-video: a second video of each look labelled in the same project."""

import subprocess
import sys
from pathlib import Path

from bench.assist import NEXT_VIDEO_SEED_STEP, VIDEO_LOOKS, Dataset, add_labels

REPO_ROOT = Path(__file__).resolve().parents[2]


class RecordingAdmin:
    """Creates labels with ids from 100 on and records what was posted."""

    def __init__(self):
        self.posted = []

    def expect(self, method, path, payload=None):
        self.posted.append((method, path, payload))
        return {"id": 100 + len(self.posted)}


def test_the_next_video_adds_only_the_labels_the_project_lacks():
    admin = RecordingAdmin()
    known = {"apple": 1, "soup": 2}

    label_ids = add_labels(admin, 7, Dataset(name="counter next", classes=["soup", "knife", "apple", "pizza"]), known)

    assert label_ids == {"apple": 1, "soup": 2, "knife": 101, "pizza": 102}
    assert admin.posted == [("POST", "projects/7/labels/", {"name": "knife"}),
                            ("POST", "projects/7/labels/", {"name": "pizza"})]
    assert known == {"apple": 1, "soup": 2}  # the caller's map is left as it was


def test_the_next_video_is_never_one_of_the_held_out_videos():
    held_out = {seed + offset for seed in VIDEO_LOOKS.values() for offset in (0, 10, 20)}

    assert not {seed + NEXT_VIDEO_SEED_STEP for seed in VIDEO_LOOKS.values()} & held_out


def test_the_next_video_takes_every_frame_of_the_first():
    # Its truth is told by frame index, so a first video left half done would be read wrongly.
    answer = subprocess.run([sys.executable, "bench/assist.py", "--next-video", "--max-frames", "3"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)

    assert answer.returncode == 2
    assert "--next-video labels every frame of the first video" in answer.stderr
