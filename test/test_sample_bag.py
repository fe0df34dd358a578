"""The synthetic sample bag: a coherent camera sequence with exact ground-truth flow, as a real rosbag2."""

import numpy as np
import pytest

from flownet_ros.evaluation.bagio import BagReader, BagWriter, select_flow_topic, select_image_topic
from flownet_ros.evaluation.sample_bag import GT_TOPIC, IMAGE_TOPIC, START_NS, SceneSequence, main, write_sample_bag
from flownet_ros.flow.warping import photometric_error
from flownet_ros.imaging.decode import image_msg_to_flow, image_msg_to_rgb


def test_sequence_is_coherent_and_ground_truth_explains_motion():
    frames = list(SceneSequence((96, 128), fps=30, seed=3).frames(6))
    assert frames[0][1] is None
    for (img1, _), (img2, flow) in zip(frames, frames[1:]):
        assert img2.shape == (96, 128, 3) and img2.dtype == np.uint8
        assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
        valid = np.isfinite(flow).all(axis=-1)
        assert valid.mean() > 0.8  # NaN only where points leave the image or get occluded
        f = np.where(valid[..., None], flow, 0)
        moving = np.hypot(f[..., 0], f[..., 1])[valid].mean()
        assert moving > 0.5  # the camera really moves
        # the newer frame warped back with the ground truth reproduces the older one (up to the sensor noise
        # of 1 grey level per frame and resampling); without motion compensation it does not: consecutive
        # frames are one scene in motion; and the ground truth is where the error has its minimum
        warped = photometric_error(img1, img2, f, valid)
        still = photometric_error(img1, img2, np.zeros_like(f), valid)
        assert warped < 0.3 * still, (warped, still)
        for d in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
            assert warped < photometric_error(img1, img2, f + np.float32(d), valid), d


def test_sequence_is_deterministic():
    a = [img for img, _ in SceneSequence((32, 48), seed=1).frames(3)]
    b = [img for img, _ in SceneSequence((32, 48), seed=1).frames(3)]
    c = [img for img, _ in SceneSequence((32, 48), seed=2).frames(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_sample_bag_is_a_rosbag2_with_ground_truth(tmp_path, storage):
    path = write_sample_bag(tmp_path / "sample", frames=5, size=(48, 64), fps=30, storage=storage, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]  # no temporary leftovers
    scene = list(SceneSequence((48, 64), fps=30, seed=0).frames(5))
    with BagReader(path) as bag:
        assert select_image_topic(bag) == (IMAGE_TOPIC, "sensor_msgs/msg/Image")  # GT not mistaken for camera
        assert select_flow_topic(bag) == GT_TOPIC
        images = list(bag.messages([IMAGE_TOPIC]))
        gts = list(bag.messages([GT_TOPIC]))
    assert [m.stamp_ns for m in images] == [START_NS + round(k * 1e9 / 30) for k in range(5)]
    assert [m.stamp_ns for m in gts] == [m.stamp_ns for m in images[1:]]  # stamped like the newer frame
    for m, (img, _) in zip(images, scene):
        assert m.msg.encoding == "rgb8" and m.msg.header.frame_id == "camera_optical_frame"
        assert np.array_equal(image_msg_to_rgb(m.msg), img)
    for m, (_, flow) in zip(gts, scene[1:]):
        assert m.msg.encoding == "32FC2" and m.msg.step == 64 * 8
        np.testing.assert_array_equal(image_msg_to_flow(m.msg), flow)  # NaN in the same places


def test_existing_bag_is_kept_unless_overwrite(tmp_path, capsys):
    path = write_sample_bag(tmp_path / "b", frames=2, size=(32, 32), progress=False)
    before = sorted(p.name for p in path.iterdir())
    assert main(["--out", str(path), "--frames", "2", "--size", "32", "32", "--quiet"]) == 1
    assert "exists" in capsys.readouterr().err
    assert sorted(p.name for p in path.iterdir()) == before
    assert main(["--out", str(path), "--frames", "3", "--size", "32", "32", "--quiet", "--overwrite"]) == 0
    with BagReader(path) as bag:
        assert bag.message_count(IMAGE_TOPIC) == 3


def test_overwrite_never_deletes_what_the_tool_did_not_write(tmp_path, capsys):
    """--overwrite replaces a sample bag; any other folder (or a sample bag with a user's file added) is refused
    and left exactly as it was."""
    notes = tmp_path / "project"
    notes.mkdir()
    (notes / "notes.txt").write_text("keep me")
    assert main(["--out", str(notes), "--frames", "2", "--size", "32", "32", "--quiet", "--overwrite"]) == 1
    assert "not a sample bag" in capsys.readouterr().err and (notes / "notes.txt").read_text() == "keep me"
    bag = write_sample_bag(tmp_path / "bag", frames=2, size=(32, 32), progress=False)
    (bag / "mine.txt").write_text("a user's file")
    assert main(["--out", str(bag), "--frames", "2", "--size", "32", "32", "--quiet", "--overwrite"]) == 1
    assert (bag / "mine.txt").is_file()
    other = tmp_path / "other_bag"  # a rosbag2 bag of someone else
    with BagWriter(other, "mcap") as w:
        w.add("/x", "sensor_msgs/msg/Image")
    assert main(["--out", str(other), "--frames", "2", "--size", "32", "32", "--quiet", "--overwrite"]) == 1
    assert (other / "metadata.yaml").is_file()
