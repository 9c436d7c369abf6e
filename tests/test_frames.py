"""Frame sources: a video file's frames in order with their times, images, and one-line errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rtpose.errors import RtposeError
from rtpose.stream.sources import Frame, FrameSource, open_source

SKI = "sample_images/ski.jpg"


@pytest.fixture(scope="module")
def street(shared_data):
    return shared_data / "videos" / "street_5frames.mp4"


def test_video_file_yields_every_frame_in_order(street):
    capture = cv2.VideoCapture(str(street))
    expected = [capture.read()[1] for _ in range(5)]
    capture.release()

    with open_source(video=street) as source:
        assert (source.live, source.fps, source.size, source.frame_count) == (
            False, 5.0, (960, 540), 5)
        frames = list(source)

    assert all(isinstance(frame, Frame) for frame in frames)
    assert [frame.index for frame in frames] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([frame.timestamp_s for frame in frames], [0, 0.2, 0.4, 0.6, 0.8])
    for frame, image in zip(frames, expected, strict=True):
        assert frame.image.dtype == np.uint8
        np.testing.assert_array_equal(frame.image, image)


def test_image_files_in_order(repo_root, tmp_path):
    flipped = tmp_path / "flipped.png"
    cv2.imwrite(str(flipped), cv2.flip(cv2.imread(str(repo_root / SKI)), 1))

    with open_source(images=[repo_root / SKI, flipped]) as source:
        assert source.size == (712, 674) and not source.live
        (i0, t0, a), (i1, t1, b) = list(source)

    assert (i0, i1, t0, t1) == (0, 1, 0.0, 0.0)
    np.testing.assert_array_equal(cv2.flip(a, 1), b)


def test_missing_camera_is_one_line(capfd):
    with pytest.raises(RtposeError, match=r"^cannot open camera 99 \(.*\)$"):
        open_source(camera=99)
    assert "WARN" not in capfd.readouterr().err  # OpenCV's own warnings are silenced


def test_missing_and_unreadable_video(tmp_path):
    with pytest.raises(RtposeError, match="^cannot read video .*nope.mp4: no such file$"):
        open_source(video=tmp_path / "nope.mp4")
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("hello")
    with pytest.raises(RtposeError, match="notes.mp4: not a video OpenCV can decode$"):
        open_source(video=not_a_video)


def test_a_source_without_frames_is_an_error():
    with pytest.raises(RtposeError, match="^cannot read a frame from empty$"):
        FrameSource("empty", iter([]), live=False, fps=1.0, frame_count=0)


def test_missing_image_and_source_count(tmp_path):
    with pytest.raises(RtposeError, match="no such file"):
        open_source(images=[tmp_path / "nope.jpg"])
    with pytest.raises(RtposeError, match="exactly one"):
        open_source()
    with pytest.raises(RtposeError, match="exactly one"):
        open_source(camera=0, video=tmp_path / "x.mp4")
