"""Property-based: whatever header fields, encodings, sizes and bytes a message carries, image conversion
returns a valid frame or raises the documented errors (ImageConversionError, FrameSizeError,
DecodeWorkError), and frame pairing always answers; nothing else ever escapes to the node."""

import struct
import zlib

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flownet_ros.imaging.decode import (
    SUPPORTED_ENCODINGS,
    ImageConversionError,
    check_raw,
    compressed_to_rgb,
    raw_to_rgb,
)
from flownet_ros.imaging.limits import MAX_ASPECT, MIN_SIDE, DecodeWorkError, FrameSizeError
from flownet_ros.ros.pairing import Frame, FramePairer

DOCUMENTED = (ImageConversionError, FrameSizeError, DecodeWorkError)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def raw_messages(draw):
    encoding = draw(st.one_of(st.sampled_from(SUPPORTED_ENCODINGS), st.text(max_size=12)))
    height = draw(st.integers(-3, 80))
    width = draw(st.integers(-3, 80))
    step = draw(st.one_of(st.integers(-5, 800), st.just(max(width, 0) * 8)))
    size = draw(st.one_of(st.integers(0, 4000), st.just(max(step, 0) * max(height, 0))))
    data = draw(st.binary(min_size=min(size, 4000), max_size=min(size, 4000)))
    return encoding, height, width, step, draw(st.booleans()), data


@given(raw_messages(), st.integers(4096, 10_000))
@SETTINGS
def test_raw_conversion_gives_a_frame_or_a_documented_error(msg, max_pixels):
    encoding, height, width, step, big_endian, data = msg
    try:
        check_raw(encoding, height, width, step, len(data), max_pixels)
        img = raw_to_rgb(encoding, height, width, step, big_endian, data)
    except DOCUMENTED:
        return
    assert img.dtype == np.uint8 and img.shape == (height, width, 3) and img.flags.c_contiguous
    assert min(height, width) >= MIN_SIDE and max(height, width) <= MAX_ASPECT * min(height, width)
    assert height * width <= max_pixels


def _png(width, height, body=b""):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, payload: (struct.pack(">I", len(payload)) + kind + payload  # noqa: E731
                                   + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


VALID_PNG = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8))[1].tobytes()
VALID_JPEG = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8))[1].tobytes()


@st.composite
def compressed_payloads(draw):
    kind = draw(st.sampled_from(["random", "mutated_png", "mutated_jpeg", "forged_png"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "forged_png":  # a tiny file declaring any size (decompression bombs included)
        return _png(draw(st.integers(0, 1 << 20)), draw(st.integers(0, 1 << 20)), draw(st.binary(max_size=64)))
    data = bytearray(VALID_PNG if kind == "mutated_png" else VALID_JPEG)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


@given(compressed_payloads(), st.sampled_from(["", "bgr8; jpeg compressed bgr8", "rgb8; png compressed bgr8",
                                               "16UC1; compressedDepth png", "garbage"]))
@SETTINGS
def test_compressed_conversion_gives_a_frame_or_a_documented_error(data, fmt):
    try:
        img = compressed_to_rgb(fmt, data, max_pixels=100_000)
    except DOCUMENTED:
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] * img.shape[1] <= 100_000


def test_decompression_bomb_is_refused_before_decoding():
    """A 16384x16384 PNG of a few hundred bytes: refused from its header, in well under a second."""
    import time

    bomb = _png(16384, 16384, zlib.compress(b"\x00" * 100_000))
    t0 = time.perf_counter()
    try:
        compressed_to_rgb("rgb8; png compressed bgr8", bomb)
        raise AssertionError("not refused")
    except FrameSizeError as err:
        assert "16384x16384" in str(err) and "max_pixels" in str(err)
    assert time.perf_counter() - t0 < 0.5


@given(st.lists(st.tuples(st.integers(-3, 3), st.sampled_from([(16, 16), (16, 24), (32, 16)]),
                          st.sampled_from(["rgb8", "bgr8", "compressed rgb8"])), max_size=30),
       st.floats(0.0, 10.0))
@SETTINGS
def test_pairing_always_answers(sequence, max_gap):
    pairer = FramePairer(max_gap)
    previous = None
    for stamp_s, size, encoding in sequence:
        frame = Frame(np.zeros(size + (3,), np.uint8), stamp_s * 1_000_000_000, None, encoding)
        prev, why = pairer.push(frame)
        assert (prev is None) != (why is None)
        if prev is not None:
            assert prev is previous and prev.size == frame.size and prev.encoding == frame.encoding
            assert frame.stamp_ns >= prev.stamp_ns
        previous = frame


def test_each_size_limit_says_which_it_is():
    from flownet_ros.imaging.limits import check_frame_size

    cases = {(65536, 1): "too small", (4096, 16): "too thin", (20000, 20000): "too large",
             (2000, 2000): "4000000 pixels exceeds max_pixels (3000000)"}
    for (w, h), why in cases.items():
        try:
            check_frame_size(w, h, 3_000_000)
            raise AssertionError(f"{w}x{h} accepted")
        except FrameSizeError as err:
            assert why in str(err) and f"{w}x{h}" in str(err)
    check_frame_size(640, 480, 3_000_000)
    check_frame_size(2208, 1242, 3_000_000)  # ZED 2K
