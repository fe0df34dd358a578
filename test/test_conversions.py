"""Image message <-> numpy conversions (no ROS graph; real sensor_msgs messages where messages are used)."""

import array

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from flownet_ros.imaging.decode import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    bytes_per_pixel,
    compressed_msg_to_rgb,
    compressed_to_rgb,
    image_msg_to_array,
    image_msg_to_flow,
    image_msg_to_rgb,
    raw_to_rgb,
    to_8bit,
)
from flownet_ros.ros.conversions import array_to_image_msg, flow_to_image_msg, rgb_to_image_msg

H, W = 24, 32


def smooth_rgb(h=H, w=W):
    """Linear ramps: bilinear demosaicing reproduces them exactly away from the border."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([40 + 4 * x, 20 + 6 * y, 220 - 2 * x - 3 * y], -1).clip(0, 255).astype(np.uint8)


def random_rgb(seed=0, h=H, w=W):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def pad_rows(pixels: np.ndarray, pad: int) -> tuple:
    """HxWxC array -> (step, bytes) with ``pad`` junk bytes after every row."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    junk = np.full((rows.shape[0], pad), 0xAB, np.uint8)
    data = np.concatenate([rows, junk], 1)
    return data.shape[1], data.tobytes()


def make_msg(encoding, pixels, pad=0, bigendian=False):
    step, data = pad_rows(np.ascontiguousarray(pixels), pad)
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, step=step,
                is_bigendian=int(bigendian))
    msg.data = array.array("B", data)
    return msg


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding,make", [
    ("rgb8", lambda rgb: rgb),
    ("bgr8", lambda rgb: rgb[..., ::-1]),
    ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])),
    ("bgra8", lambda rgb: np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])),
])
def test_colour_8bit_exact_with_padding(encoding, make, pad):
    rgb = random_rgb()
    out = image_msg_to_rgb(make_msg(encoding, make(rgb), pad))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_mono8_repeats_grey():
    grey = random_rgb()[..., 0]
    out = image_msg_to_rgb(make_msg("mono8", grey[..., None], pad=3))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, 2))


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_mono16_scaled_by_bit_depth(encoding, bigendian):
    grey12 = np.random.default_rng(1).integers(0, 4096, (H, W), dtype=np.uint16)
    grey12[0, 0] = 4095  # a 12-bit sensor
    px = grey12.astype(">u2" if bigendian else "<u2")[..., None]
    out = image_msg_to_rgb(make_msg(encoding, px, pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(out[..., 0], (grey12 >> 4).astype(np.uint8))
    np.testing.assert_array_equal(out[..., 1], out[..., 2])


def test_to_8bit_bit_depths():
    assert to_8bit(np.array([[255]], np.uint16))[0, 0] == 255  # 8 significant bits: unchanged
    assert to_8bit(np.array([[1023]], np.uint16))[0, 0] == 255  # 10-bit full scale
    assert to_8bit(np.array([[65535, 256]], np.uint16)).tolist() == [[255, 1]]  # 16-bit: >> 8
    assert to_8bit(np.array([[2047]], np.uint16))[0, 0] == 127  # 11 bits -> treated as 12-bit data


def test_rgb16_big_endian():
    rgb = random_rgb(2)
    px = (rgb.astype(np.uint16) << 8 | 0x3C).astype(">u2")
    out = image_msg_to_rgb(make_msg("rgb16", px, bigendian=True))
    np.testing.assert_array_equal(out, rgb)
    out = image_msg_to_rgb(make_msg("bgr16", px[..., ::-1].astype(">u2"), bigendian=True))
    np.testing.assert_array_equal(out, rgb)


BAYER = {"rggb": "RGGB", "bggr": "BGGR", "gbrg": "GBRG", "grbg": "GRBG"}


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Bayer mosaic in ROS naming: the pattern lists the colours of the top-left 2x2 block row by row."""
    index = {"R": 0, "G": 1, "B": 2}
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for dy in range(2):
        for dx in range(2):
            out[dy::2, dx::2] = rgb[dy::2, dx::2, index[pattern[2 * dy + dx]]]
    return out


@pytest.mark.parametrize("pattern", sorted(BAYER))
def test_bayer8_pattern_naming(pattern):
    rgb = smooth_rgb()
    out = image_msg_to_rgb(make_msg(f"bayer_{pattern}8", mosaic(rgb, BAYER[pattern])[..., None], pad=4))
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(out[inner].astype(int), rgb[inner].astype(int), atol=1)
    # a wrong pattern would swap or shift colours: much larger error
    wrong = {"rggb": "bggr", "bggr": "rggb", "gbrg": "grbg", "grbg": "gbrg"}[pattern]
    bad = raw_to_rgb(f"bayer_{wrong}8", H, W, W, False, mosaic(rgb, BAYER[pattern]).tobytes())
    assert np.abs(bad[inner].astype(int) - rgb[inner]).mean() > 20


@pytest.mark.parametrize("bigendian", [False, True])
def test_bayer16(bigendian):
    rgb16 = smooth_rgb().astype(np.uint16) * 256
    m = mosaic(rgb16, "GRBG").astype(">u2" if bigendian else "<u2")
    out = image_msg_to_rgb(make_msg("bayer_grbg16", m[..., None], bigendian=bigendian))
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(out[inner].astype(int), smooth_rgb()[inner].astype(int), atol=1)


def pack_yuv422(y, u, v, order):
    """Y: HxW, U/V: HxW/2 -> HxWx2 bytes in 'yuyv' (Y0 U Y1 V) or 'uyvy' (U Y0 V Y1) order."""
    h, w = y.shape
    out = np.zeros((h, w // 2, 4), np.uint8)
    if order == "yuyv":
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u, y[:, 1::2], v
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u, y[:, 0::2], v, y[:, 1::2]
    return out.reshape(h, w, 2)


@pytest.mark.parametrize("encoding,order", [("yuyv", "yuyv"), ("yuv422_yuy2", "yuyv"),
                                            ("uyvy", "uyvy"), ("yuv422", "uyvy")])
def test_yuv422_both_namings(encoding, order):
    y = np.full((H, W), 100, np.uint8)
    u = np.full((H, W // 2), 128, np.uint8)
    v = np.full((H, W // 2), 128, np.uint8)
    # right half: saturated red in BT.601 (Y 81, U 90, V 240)
    y[:, W // 2:], u[:, W // 4:], v[:, W // 4:] = 81, 90, 240
    out = image_msg_to_rgb(make_msg(encoding, pack_yuv422(y, u, v, order), pad=2))
    grey = out[:, : W // 2]
    assert np.all(grey == grey[0, 0]) and abs(int(grey[0, 0, 0]) - round(1.164 * (100 - 16))) <= 1
    red = out[:, W // 2:].reshape(-1, 3)
    assert red[:, 0].min() >= 245 and red[:, 1:].max() <= 10


@pytest.mark.parametrize("fields,match", [
    (dict(encoding="rgb8", height=H, width=W, step=W * 3, data=bytes(W * 3 * H - 1)), "expected step"),
    (dict(encoding="rgb8", height=H, width=W, step=W * 3 - 1, data=bytes(W * 3 * H)), "smaller than"),
    (dict(encoding="32FC1", height=H, width=W, step=W * 4, data=bytes(W * 4 * H)), "unsupported encoding"),
    (dict(encoding="fancy", height=H, width=W, step=W, data=bytes(W * H)), "unsupported encoding"),
    (dict(encoding="mono8", height=0, width=W, step=W, data=b""), "empty image"),
    (dict(encoding="mono8", height=H, width=0, step=0, data=b""), "empty image"),
    (dict(encoding="yuyv", height=2, width=3, step=6, data=bytes(12)), "even width"),
])
def test_malformed_raw_rejected(fields, match):
    with pytest.raises(ImageConversionError, match=match):
        raw_to_rgb(fields["encoding"], fields["height"], fields["width"], fields["step"], False, fields["data"])


def test_every_supported_encoding_converts():
    for enc in SUPPORTED_ENCODINGS:
        bpp = bytes_per_pixel(enc)
        out = raw_to_rgb(enc, 4, 6, 6 * bpp + 2, False, bytes(range(4 * (6 * bpp + 2))))
        assert out.shape == (4, 6, 3) and out.dtype == np.uint8, enc


def test_compressed_png_exact_and_jpeg_close():
    rgb = smooth_rgb()
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    msg = CompressedImage(format="rgb8; png compressed bgr8")
    msg.data = array.array("B", png.tobytes())
    np.testing.assert_array_equal(compressed_msg_to_rgb(msg), rgb)
    ok, jpg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb("", jpg.tobytes())  # empty format = bgr8 jpeg
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 3


def test_compressed_grey_and_16bit_png():
    grey = random_rgb(3)[..., 0]
    ok, png = cv2.imencode(".png", grey)
    np.testing.assert_array_equal(compressed_to_rgb("mono8; png compressed mono8", png.tobytes()),
                                  np.repeat(grey[..., None], 3, 2))
    ok, png16 = cv2.imencode(".png", grey.astype(np.uint16) << 8)
    np.testing.assert_array_equal(compressed_to_rgb("mono16; png compressed mono16", png16.tobytes())[..., 0], grey)


@pytest.mark.parametrize("fmt,data,match", [
    ("jpeg", bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "corrupt"),
    ("png", b"\x89PNG\r\n\x1a\n" + bytes(40), "corrupt"),
    ("jpeg", b"", "no data"),
    ("16UC1; compressedDepth png", b"\x00" * 64, "compressedDepth"),
])
def test_corrupt_compressed_rejected(fmt, data, match):
    with pytest.raises(ImageConversionError, match=match):
        compressed_to_rgb(fmt, data)


def test_flow_image_roundtrip():
    flow = np.random.default_rng(4).normal(0, 5, (H, W, 2)).astype(np.float32)
    msg = flow_to_image_msg(flow)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("32FC2", H, W, W * 8)
    assert len(msg.data) == H * W * 8 and isinstance(msg.data, array.array)
    np.testing.assert_array_equal(image_msg_to_flow(msg), flow)
    # a big-endian 32FC2 from another machine reads back the same
    be = Image(height=H, width=W, encoding="32FC2", step=W * 8, is_bigendian=1)
    be.data = array.array("B", flow.astype(">f4").tobytes())
    np.testing.assert_array_equal(image_msg_to_flow(be), flow)
    with pytest.raises(ImageConversionError):
        image_msg_to_flow(rgb_to_image_msg(random_rgb()))


def test_rgb_output_and_header():
    from std_msgs.msg import Header
    rgb = random_rgb(5)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = rgb_to_image_msg(rgb, header)
    assert (msg.encoding, msg.step, msg.header.frame_id, msg.header.stamp.nanosec) == ("rgb8", W * 3, "cam", 345)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)
    np.testing.assert_array_equal(image_msg_to_array(msg), rgb)
    with pytest.raises(ValueError, match="HxWx3"):
        array_to_image_msg(np.zeros((H, W, 2), np.uint8), "rgb8")


def test_imaging_imports_no_ros():
    """The bag tools and benchmarks decode images through flownet_ros.imaging without loading ROS."""
    import subprocess
    import sys

    code = ("import sys, flownet_ros.imaging.decode, flownet_ros.imaging.limits, flownet_ros.evaluation.bagio; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs') "
            "or m.startswith('flownet_ros.ros')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_decoder_stderr_is_captured_not_printed(capfd):
    """libpng's warning for a corrupt ancillary chunk goes to the caller's list, not to fd 2."""
    import struct

    data = cv2.imencode(".png", random_rgb(3))[1].tobytes()
    chunk = b"tEXt" + b"Comment\0probe"
    bad = data[:33] + struct.pack(">I", len(chunk) - 4) + chunk + b"\0\0\0\0" + data[33:]
    said = []
    compressed_to_rgb("png", bad, messages=said)
    assert any("CRC error" in line for line in said) and "CRC error" not in capfd.readouterr().err
    with pytest.raises(ImageConversionError, match=r"\(10000 characters\)"):
        raw_to_rgb("x" * 10_000, 16, 16, 48, False, bytes(768))
