"""A folder of frames + ground-truth flow files -> rosbag2 (images_to_bag CLI) -> the report scores it."""

import json

import cv2
import numpy as np
import pytest

from flownet_ros.evaluation.bagio import COMPRESSED, IMAGE, BagReader, decode_flow, decode_image
from flownet_ros.evaluation.images_to_bag import main
from flownet_ros.evaluation.report import main as report_main
from flownet_ros.evaluation.sample_bag import SceneSequence
from flownet_ros.flow.io import write_flo, write_kitti_flow
from flownet_ros.flow.metrics import epe

SIZE = (48, 64)
N = 5


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """frames/frame_<k>.png (natural order: 2 before 10), flo/ and kitti/ ground truth, times.csv (EuRoC style)."""
    root = tmp_path_factory.mktemp("seq")
    (root / "frames").mkdir()
    (root / "flo").mkdir()
    (root / "kitti").mkdir()
    frames, flows = [], []
    for k, (img, flow) in enumerate(SceneSequence(SIZE, fps=10.0).frames(N)):
        name = f"frame_{2 * k + 2}"  # frame_2 ... frame_10
        cv2.imwrite(str(root / "frames" / f"{name}.png"), img[..., ::-1])
        frames.append(img)
        if flow is not None:  # flow of the pair (k-1, k): file j = frame j -> j + 1
            write_flo(root / "flo" / f"{k - 1:04d}.flo", flow)
            write_kitti_flow(root / "kitti" / f"{k - 1:06d}_10.png", flow)
            flows.append(flow)
    (root / "times.csv").write_text("#timestamp [ns],filename\n"
                                    + "".join(f"{1403715273262142976 + k * 50_000_000},frame_{2 * k + 2}.png\n"
                                              for k in range(N)))
    return root, frames, flows


def read(bag, topic):
    with BagReader(bag) as b:
        return b.topics, [(m.stamp_ns, m.time_ns, m.msg) for m in b.messages([topic])]


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "mono16", "jpeg"])
def test_frames_become_a_bag_in_name_order(folder, tmp_path, encoding, capsys):
    root, frames, _ = folder
    args = [str(root / "frames"), "--out", str(tmp_path / "bag"), "--encoding", encoding,
            "--timestamps", str(root / "times.csv"), "--storage", "sqlite3"]
    assert main(args) == 0
    topic = "/camera/image_raw/compressed" if encoding == "jpeg" else "/camera/image_raw"
    assert f"wrote {N} frames on {topic} -> {tmp_path / 'bag'}" in capsys.readouterr().out
    topics, msgs = read(tmp_path / "bag", topic)
    assert topics == {topic: COMPRESSED if encoding == "jpeg" else IMAGE}
    assert [s for s, _, _ in msgs] == [t for _, t, _ in msgs] == [1403715273262142976 + k * 50_000_000
                                                                 for k in range(N)]
    for img, (_, _, msg) in zip(frames, msgs):  # decoded as the node decodes it
        got = decode_image(msg).astype(int)
        want = img.astype(int)
        if encoding.startswith("mono"):
            assert msg.encoding == encoding
            want = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2).astype(int)
        if encoding == "jpeg":  # lossy (quality 90, chroma subsampled) on a small noisy frame
            assert np.abs(got - want).mean() < 8
        else:  # exact (mono: OpenCV's grey conversion, rounded)
            assert np.abs(got - want).max() <= 1
    assert main(args) == 2  # the bag exists: refused, not overwritten
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("gt", ["flo", "kitti"])
def test_folder_to_bag_to_offline_report(folder, tmp_path, gt, capsys):
    root, frames, flows = folder
    assert main([str(root / "frames"), "--out", str(tmp_path / "bag"), "--fps", "10", "--flow", str(root / gt)]) == 0
    assert f"{N - 1} ground-truth flows on /camera/flow_gt" in capsys.readouterr().out
    _, gts = read(tmp_path / "bag", "/camera/flow_gt")
    _, imgs = read(tmp_path / "bag", "/camera/image_raw")
    assert [s for s, _, _ in gts] == [s for s, _, _ in imgs][1:]  # stamped like the newer frame
    for flow, (_, _, msg) in zip(flows, gts):
        got = decode_flow(msg)
        known = np.isfinite(flow).all(-1)
        assert (np.isfinite(got).all(-1) == known).all()  # no ground truth stays NaN
        assert np.abs(got[known] - flow[known]).max() <= (1 / 64 if gt == "kitti" else 0)

    assert report_main([str(tmp_path / "bag"), "--offline", "--out", str(tmp_path / "rep"), "--baseline",
                        "dis-medium", "--device", "cpu", "--quiet"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["gt_topic"] == "/camera/flow_gt" and rep["pairs"] == N - 1
    network, dis, zero = rep["summary"]
    # zero flow's EPE is the mean ground-truth magnitude: the known answer
    mags = [epe(np.zeros_like(f), np.nan_to_num(f), np.isfinite(f).all(-1)) for f in flows]
    assert zero["epe"] == pytest.approx(np.mean(mags), abs=0.02)
    assert np.isfinite(network["epe"]) and dis["epe"] < zero["epe"]


def test_bad_folders_are_one_line_errors(folder, tmp_path, capsys):
    root, _, _ = folder
    out = tmp_path / "bag"
    cases = [
        ([str(tmp_path / "none"), "--out", str(out)], f"{tmp_path / 'none'}: frame folder not found"),
        ([str(root / "frames"), "--out", str(out), "--timestamps", str(root / "flo" / "0000.flo")],
         "not a text file of timestamps"),
        ([str(root / "frames"), "--out", str(out), "--flow", str(root / "flo"), "--flow-first", "1"], "do not fit"),
    ]
    (tmp_path / "short.txt").write_text("0.0\n0.1\n")
    (tmp_path / "words.txt").write_text("0.0\n0.1\nsoon\n0.3\n0.4\n")
    cases += [([str(root / "frames"), "--out", str(out), "--timestamps", str(tmp_path / "short.txt")],
               "2 timestamps for 5 frames"),
              ([str(root / "frames"), "--out", str(out), "--timestamps", str(tmp_path / "words.txt")],
               f"{tmp_path / 'words.txt'}:3: not a timestamp: 'soon'")]
    for args, why in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.strip().splitlines()) == 1, err
    bad = tmp_path / "bad_frames"
    bad.mkdir()
    for name in ("a.png", "b.png"):
        (bad / name).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert main([str(bad), "--out", str(out)]) == 2
    assert f"{bad / 'a.png'}: cannot decode" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".bag.tmp-*"))  # nothing left behind
