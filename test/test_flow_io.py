"""Middlebury .flo and KITTI PNG round trips and corrupt-file errors."""

import struct

import cv2
import numpy as np
import pytest

from flownet_ros.flow import FlowFileError, read_flo, read_flow, read_kitti_flow, write_flo, write_kitti_flow


def _flow(h=7, w=9, seed=0):
    return np.random.default_rng(seed).normal(0, 30, size=(h, w, 2)).astype(np.float32)


def test_flo_round_trip_exact(tmp_path):
    flow = _flow()
    p = tmp_path / "a.flo"
    write_flo(p, flow)
    back = read_flo(p)
    assert back.dtype == np.float32 and back.shape == (7, 9, 2)
    np.testing.assert_array_equal(back, flow)


def test_flo_layout_is_little_endian_middlebury(tmp_path):
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 1] = (1.5, -2.0)  # row 0, column 1: u, v interleaved
    p = tmp_path / "b.flo"
    write_flo(p, flow)
    data = p.read_bytes()
    assert data[:4] == b"PIEH"
    assert struct.unpack("<fii", data[:12]) == (202021.25, 3, 2)
    assert len(data) == 12 + 2 * 3 * 2 * 4
    assert struct.unpack("<ff", data[12 + 8:12 + 16]) == (1.5, -2.0)


def test_flo_hand_written_file_reads(tmp_path):
    p = tmp_path / "c.flo"
    p.write_bytes(struct.pack("<fii", 202021.25, 2, 1) + struct.pack("<4f", 1, 2, 3, 4))
    np.testing.assert_array_equal(read_flo(p), [[[1, 2], [3, 4]]])


@pytest.mark.parametrize("content, words", [
    (b"PIE", "truncated"),
    (struct.pack("<fii", 1.0, 2, 2) + bytes(32), "magic"),
    (struct.pack("<fii", 202021.25, 2, 2) + bytes(31), "truncated"),
    (struct.pack("<fii", 202021.25, 2, 2) + bytes(40), "oversized"),
    (struct.pack("<fii", 202021.25, 0, 2), "absurd"),
    (struct.pack("<fii", 202021.25, -5, 2), "absurd"),
    (struct.pack("<fii", 202021.25, 10 ** 9, 10 ** 9) + bytes(64), "absurd"),
])
def test_flo_corrupt_files_raise_naming_file(tmp_path, content, words):
    p = tmp_path / "broken_file.flo"
    p.write_bytes(content)
    with pytest.raises(FlowFileError) as err:
        read_flo(p)
    assert "broken_file.flo" in str(err.value) and words in str(err.value)
    assert isinstance(err.value, ValueError)


def test_flo_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_flo(tmp_path / "nope.flo")


def test_write_flo_rejects_bad_shape(tmp_path):
    with pytest.raises(FlowFileError, match="x.flo"):
        write_flo(tmp_path / "x.flo", np.zeros((4, 4, 3), np.float32))


def test_kitti_round_trip_quantised_with_mask(tmp_path):
    flow = np.round(_flow(6, 11, 1) * 64) / 64  # representable values
    valid = np.random.default_rng(2).random((6, 11)) > 0.3
    p = tmp_path / "000000_10.png"
    write_kitti_flow(p, flow, valid)
    back, bvalid = read_kitti_flow(p)
    assert back.dtype == np.float32 and bvalid.dtype == bool
    np.testing.assert_array_equal(bvalid, valid)
    np.testing.assert_array_equal(back[valid], flow[valid])
    assert (back[~valid] == 0).all()


def test_kitti_channel_order_matches_format(tmp_path):
    """File channels (RGB) are (u, v, valid) with value = flow*64 + 2^15: check raw BGR values."""
    flow = np.zeros((1, 2, 2), np.float32)
    flow[0, 0] = (1.0, -0.5)
    p = tmp_path / "k.png"
    write_kitti_flow(p, flow, np.array([[True, False]]))
    raw = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    b, g, r = raw[0, 0]
    assert (r, g, b) == (2 ** 15 + 64, 2 ** 15 - 32, 1)
    assert raw[0, 1, 0] == 0
    # a file written directly by OpenCV in KITTI's convention reads back the same way
    raw2 = np.zeros((1, 1, 3), np.uint16)
    raw2[0, 0] = (1, 2 ** 15 + 128, 2 ** 15 - 640)  # BGR: valid, v = 2, u = -10
    cv2.imwrite(str(tmp_path / "m.png"), raw2)
    f2, v2 = read_kitti_flow(tmp_path / "m.png")
    np.testing.assert_array_equal(f2[0, 0], (-10.0, 2.0))
    assert v2[0, 0]


def test_kitti_corrupt_and_wrong_type(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(FlowFileError, match="bad.png"):
        read_kitti_flow(bad)
    eight_bit = tmp_path / "eight.png"
    cv2.imwrite(str(eight_bit), np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(FlowFileError, match="eight.png.*16-bit"):
        read_kitti_flow(eight_bit)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_kitti_flow(tmp_path / "missing.png")


def test_read_flow_dispatch_and_unknown_marker(tmp_path):
    flow = _flow(3, 4)
    flow[1, 2, 0] = 1e10  # Middlebury "unknown"
    write_flo(tmp_path / "f.flo", flow)
    f, v = read_flow(tmp_path / "f.flo")
    assert not v[1, 2] and v.sum() == 11 and (f[1, 2] == 0).all()
    with pytest.raises(FlowFileError, match="f.txt"):
        read_flow(tmp_path / "f.txt")
