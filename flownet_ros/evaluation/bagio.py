"""rosbag2 input/output with ``rosbags``: sqlite3 and mcap, a bag directory or a single file.

Every failure to read a bag, or to find what was asked for in it, raises :class:`BagError`
(a ``ValueError``) whose message names the bag, so a CLI can print it and exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from flownet_ros.imaging.decode import (
    SUPPORTED_ENCODINGS,
    check_raw,
    compressed_msg_to_rgb,
    image_msg_to_flow,
    image_msg_to_rgb,
)
from flownet_ros.imaging.limits import DEFAULT_MAX_PIXELS

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE, COMPRESSED)
FLOW_ENCODING = "32FC2"
#: Image encodings that are not camera pictures (flow, depth, disparity): never auto-detected as input.
NON_CAMERA_ENCODINGS = ("32FC", "64FC", "16UC1", "16SC1", "32SC")

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TYPESTORE = get_typestore(Stores.ROS2_KILTED)
#: custom_data keys of a replay's output bag: wall-clock seconds between the first and the last flow
#: received, and the replay rate
WALL_SPAN_KEY = "flownet_ros.flow_wall_span_s"
RATE_KEY = "flownet_ros.rate"
INPUT_BAG_KEY = "flownet_ros.input_bag"  # the input bag a replay recorded from


def rosbags_convert() -> str:
    """The rosbags-convert command of this interpreter's environment (a venv's bin/ is often not on PATH)."""
    here = Path(sys.executable).parent / "rosbags-convert"
    return str(here) if here.is_file() else "rosbags-convert"


class BagError(ValueError):
    """A bag cannot be read or written, or lacks the topic asked for. The message names the bag."""


def cdr_stamp_ns(raw: bytes) -> int:
    """header.stamp (ns) of a CDR-serialized message that starts with std_msgs/Header, without decoding it.

    Layout: 4-byte encapsulation (byte 1: 0 = big, 1 = little endian), int32 sec, uint32 nanosec.
    """
    if len(raw) < 12:
        raise ValueError(f"serialized message too short for a header ({len(raw)} bytes)")
    sec, nsec = struct.unpack_from("<iI" if raw[1] & 1 else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rosbags or rclpy) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int):
    """Integer nanoseconds -> rosbags builtin_interfaces/msg/Time."""
    time_cls = TYPESTORE.types["builtin_interfaces/msg/Time"]
    return time_cls(sec=int(ns) // 1_000_000_000, nanosec=int(ns) % 1_000_000_000)


def make_header(stamp_ns: int, frame_id: str):
    """Rosbags std_msgs/msg/Header with ``stamp_ns`` nanoseconds."""
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


@dataclass
class BagMessage:
    """One message: ``time_ns`` is the bag (receive) time, ``raw`` the CDR bytes; ``msg`` decodes lazily."""

    topic: str
    msgtype: str
    time_ns: int
    raw: bytes
    _reader: "BagReader"
    _msg: Any = None

    @property
    def msg(self) -> Any:
        if self._msg is None:
            self._msg = self._reader.deserialize(self.raw, self.msgtype)
        return self._msg

    @property
    def stamp_ns(self) -> int:
        """header.stamp in nanoseconds (messages with a header only)."""
        return stamp_to_ns(self.msg.header.stamp)


class BagReader:
    """Reads a rosbag2 bag (directory with metadata.yaml, or a single ``.mcap`` / ``.db3`` file).

    Use as a context manager. ``topics`` maps topic -> message type; ``messages(topics)`` yields
    :class:`BagMessage` in bag-time order.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.suffix == ".bag":
            raise BagError(f"bag {self.path} is a ROS 1 bag; convert it to rosbag2 first "
                           f"({rosbags_convert()} --src {self.path} --dst <dir>)")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            files = sorted(p.name for p in self.path.iterdir() if p.suffix in (".mcap", ".db3"))
            if len(files) != 1:
                raise BagError(f"bag {self.path}: directory without metadata.yaml"
                               + (f" and with several storage files {files}" if files else
                                  " and without a .mcap or .db3 file"))
            self.path = self.path / files[0]
        self._reader: Optional[AnyReader] = None
        self._typestore = None  # the bag's own message definitions; stays usable after close()

    def __enter__(self) -> "BagReader":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fail(self, what: str, err: BaseException) -> BagError:
        detail = str(err) or type(err).__name__
        return BagError(f"bag {self.path}: {what}: {detail}")

    def open(self) -> None:
        try:
            self._reader = AnyReader([self.path], default_typestore=TYPESTORE)
            self._reader.open()
            self._typestore = self._reader.typestore
        except BagError:
            raise
        except Exception as err:  # rosbags, sqlite3, mcap and yaml errors all mean "not a readable bag"
            self._reader = None
            raise self._fail("cannot open (corrupt or not a rosbag2 bag)", err) from err

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            try:
                reader.close()
            except Exception:  # closing a half-broken bag must not mask the original error
                pass

    @property
    def reader(self) -> AnyReader:
        if self._reader is None:
            raise BagError(f"bag {self.path} is not open")
        return self._reader

    @property
    def topics(self) -> Dict[str, str]:
        """Topic -> message type (e.g. ``sensor_msgs/msg/Image``)."""
        return {t: info.msgtype or "?" for t, info in self.reader.topics.items()}

    @property
    def custom_data(self) -> Dict[str, str]:
        """metadata.yaml ``custom_data`` (bag directories written with it; else empty)."""
        try:
            return dict(self.reader.readers[0].storage.metadata.custom or {})
        except AttributeError:  # single storage file: no metadata.yaml
            return {}

    def message_count(self, topic: str) -> int:
        info = self.reader.topics.get(topic)
        return int(info.msgcount) if info is not None else 0

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        if self._typestore is None:
            raise BagError(f"bag {self.path} was never opened")
        try:
            return self._typestore.deserialize_cdr(raw, msgtype)
        except Exception as err:
            raise self._fail(f"cannot decode a {msgtype} message", err) from err

    def messages(self, topics: Iterable[str], start: Optional[int] = None,
                 stop: Optional[int] = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` in bag-time order (``start`` <= bag time < ``stop`` when given).

        Unknown topics raise :class:`BagError`.
        """
        topics = list(topics)
        missing = [t for t in topics if t not in self.topics]
        if missing:
            raise BagError(f"bag {self.path} has no topic {', '.join(missing)}; "
                           f"topics: {describe_topics(self.topics)}")
        conns = [c for c in self.reader.connections if c.topic in topics]
        try:
            for conn, t_ns, raw in self.reader.messages(connections=conns, start=start, stop=stop):
                yield BagMessage(conn.topic, conn.msgtype, int(t_ns), bytes(raw), self)
        except BagError:
            raise
        except Exception as err:
            raise self._fail("cannot read messages (corrupt bag)", err) from err

    def first(self, topic: str) -> Optional[BagMessage]:
        for m in self.messages([topic]):
            return m
        return None


def describe_topics(topics: Dict[str, str]) -> str:
    return ", ".join(f"{t} ({ty})" for t, ty in sorted(topics.items())) or "none"


def image_topics(bag: BagReader) -> Dict[str, str]:
    """Image and CompressedImage topics -> encoding of their first message ('' for compressed/empty)."""
    out = {}
    for topic, ty in bag.topics.items():
        if ty not in IMAGE_TYPES:
            continue
        first = bag.first(topic) if ty == IMAGE else None
        out[topic] = first.msg.encoding if first is not None else ""
    return out


def _is_camera(encoding: str) -> bool:
    """'' = CompressedImage; raw encodings must be readable by the node's decoding (flownet_ros.imaging)."""
    return encoding == "" or (encoding in SUPPORTED_ENCODINGS
                              and not encoding.upper().startswith(NON_CAMERA_ENCODINGS))


def select_image_topic(bag: BagReader, topic: Optional[str] = None) -> Tuple[str, str]:
    """The camera topic to replay: ``topic`` if given (checked), else the only camera image topic.

    Returns (topic, message type). Errors name the bag and list its image topics.
    """
    images = image_topics(bag)
    listing = describe_topics({t: bag.topics[t] + (f", {e}" if e else "") for t, e in images.items()})
    if topic is not None:
        if topic not in bag.topics:
            raise BagError(f"bag {bag.path} has no topic {topic!r}; image topics: {listing}")
        if bag.topics[topic] not in IMAGE_TYPES:
            raise BagError(f"topic {topic!r} in bag {bag.path} has type {bag.topics[topic]}, expected "
                           f"sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage; image topics: {listing}")
        enc = images[topic]
        if enc and enc not in SUPPORTED_ENCODINGS:
            raise BagError(f"topic {topic!r} in bag {bag.path} has encoding {enc!r}, not a camera image "
                           f"encoding the node reads ({', '.join(SUPPORTED_ENCODINGS)}); image topics: {listing}")
        return topic, bag.topics[topic]
    cameras = [t for t, e in images.items() if _is_camera(e)]
    if not cameras:
        raise BagError(f"bag {bag.path} has no camera image topic (sensor_msgs/msg/Image or CompressedImage); "
                       f"topics: {describe_topics(bag.topics)}")
    if len(cameras) > 1:
        raise BagError(f"bag {bag.path} has several image topics, choose one with --topic: {listing}")
    return cameras[0], bag.topics[cameras[0]]


def select_flow_topic(bag: BagReader, topic: Optional[str] = None, exclude: Sequence[str] = ()) -> Optional[str]:
    """A 32FC2 flow topic: ``topic`` if given (checked), else the only one not in ``exclude``, else None."""
    images = image_topics(bag)
    if topic is not None:
        if images.get(topic) != FLOW_ENCODING:
            found = bag.topics.get(topic, "no such topic")
            enc = f", encoding {images[topic]}" if images.get(topic) else ""
            raise BagError(f"topic {topic!r} in bag {bag.path} is not a 32FC2 flow image ({found}{enc}); "
                           f"topics: {describe_topics(bag.topics)}")
        return topic
    flows = [t for t, e in images.items() if e == FLOW_ENCODING and t not in exclude]
    if len(flows) > 1:
        raise BagError(f"bag {bag.path} has several 32FC2 flow topics {flows}; choose one explicitly")
    return flows[0] if flows else None


class BagWriter:
    """Writes a rosbag2 bag directory (``storage`` 'mcap' or 'sqlite3') with the Kilted type store.

    ``add(topic, msgtype)`` once per topic, then ``write(topic, t_ns, msg=... or raw=...)``.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", custom: Optional[Dict[str, str]] = None):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"bag {self.path} already exists")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        for key, value in (custom or {}).items():
            self._writer.set_custom_data(key, str(value))
        self._writer.open()
        self._conns: Dict[str, Any] = {}
        self.counts: Dict[str, int] = {}

    def set_custom(self, key: str, value: str) -> None:
        """metadata.yaml custom_data entry (written when the bag is closed)."""
        self._writer.set_custom_data(key, str(value))

    def add(self, topic: str, msgtype: str) -> None:
        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            self.counts[topic] = 0

    def write(self, topic: str, t_ns: int, msg: Any = None, raw: Optional[bytes] = None) -> None:
        conn = self._conns[topic]
        if raw is None:
            raw = bytes(TYPESTORE.serialize_cdr(msg, conn.msgtype))
        self._writer.write(conn, int(t_ns), raw)
        self.counts[topic] += 1

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def flow_message(flow, stamp_ns: int, frame_id: str):
    """[H,W,2] float32 flow in pixels -> rosbags sensor_msgs/msg/Image, encoding 32FC2, step W*8."""
    import numpy as np

    flow = np.ascontiguousarray(flow, dtype="<f4")
    h, w = flow.shape[:2]
    return TYPESTORE.types[IMAGE](header=make_header(stamp_ns, frame_id), height=h, width=w,
                                  encoding=FLOW_ENCODING, is_bigendian=0, step=w * 8,
                                  data=flow.reshape(-1).view(np.uint8))


def rgb_message(img, stamp_ns: int, frame_id: str, encoding: str = "rgb8"):
    """HxWx3 uint8 RGB -> rosbags sensor_msgs/msg/Image (``rgb8`` or ``bgr8``)."""
    return image_message(img if encoding == "rgb8" else img[..., ::-1], stamp_ns, frame_id, encoding)


def image_message(pixels, stamp_ns: int, frame_id: str, encoding: str):
    """Pixels already in ``encoding``'s layout (HxWx3 uint8 for rgb8/bgr8, HxW uint8 mono8, HxW uint16
    mono16, little endian) -> rosbags sensor_msgs/msg/Image."""
    import numpy as np

    dtype = np.dtype("<u2") if encoding == "mono16" else np.dtype(np.uint8)
    pixels = np.ascontiguousarray(pixels, dtype=dtype)
    h, w = pixels.shape[:2]
    return TYPESTORE.types[IMAGE](header=make_header(stamp_ns, frame_id), height=h, width=w, encoding=encoding,
                                  is_bigendian=0, step=pixels[0].nbytes, data=pixels.reshape(-1).view(np.uint8))


def compressed_message(data: bytes, stamp_ns: int, frame_id: str, fmt: str):
    """Encoded image bytes -> rosbags sensor_msgs/msg/CompressedImage with ``format`` ``fmt``."""
    import numpy as np

    return TYPESTORE.types[COMPRESSED](header=make_header(stamp_ns, frame_id), format=fmt,
                                       data=np.frombuffer(data, np.uint8))


@contextlib.contextmanager
def new_bag(path: str | Path, storage: str = "mcap", custom: Optional[Dict[str, str]] = None,
            replace: bool = False) -> Iterator[BagWriter]:
    """A BagWriter for a new bag at ``path``, written under a temporary name beside it and renamed into place
    when the block ends without an error (a failed or interrupted run leaves no bag, nor half of one).
    ``path`` must not exist unless ``replace``."""
    path = Path(path)
    if path.exists() and not replace:
        raise BagError(f"bag {path} already exists")
    tmp_root = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp = tmp_root / path.name  # same name: the storage file inside is named after the bag directory
    shutil.rmtree(tmp_root, ignore_errors=True)
    try:
        with BagWriter(tmp, storage, custom) as writer:
            yield writer
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


class StampIndex:
    """Random access by header stamp to the messages of one topic (any order in the bag).

    Scans the topic once reading only the serialized headers; ``get(stamp)`` then reads the one
    message back by its bag time. Output bags of a replay at ``--rate 0`` are not in stamp order.
    """

    def __init__(self, bag: BagReader, topic: str):
        self.bag = bag
        self.topic = topic
        self.times: Dict[int, List[int]] = {}
        for m in bag.messages([topic]):
            self.times.setdefault(cdr_stamp_ns(m.raw), []).append(m.time_ns)

    def __contains__(self, stamp: int) -> bool:
        return stamp in self.times

    def __len__(self) -> int:
        return sum(len(t) for t in self.times.values())

    def get(self, stamp: int) -> Optional[BagMessage]:
        """The first message with header stamp ``stamp`` (None if there is none)."""
        for t in self.times.get(stamp, ()):
            for m in self.bag.messages([self.topic], start=t, stop=t + 1):
                if cdr_stamp_ns(m.raw) == stamp:
                    return m
        return None


def decode_image(msg: Any, max_pixels: Optional[int] = None):
    """sensor_msgs Image or CompressedImage (rosbags or rclpy) -> HxWx3 uint8 RGB via the node's
    conversions and size limits (``max_pixels`` None = the node's default). ValueError (naming the
    problem) when the node would refuse the message."""
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if hasattr(msg, "format"):
        img = compressed_msg_to_rgb(msg, limit)
    else:
        check_raw(msg.encoding, msg.height, msg.width, msg.step, len(msg.data), limit)
        img = image_msg_to_rgb(msg)
    return img if img.flags.writeable else img.copy()  # rgb8 can be a view of the read-only bag buffer


def decode_flow(msg: Any):
    """A 32FC2 Image (rosbags or rclpy) -> HxWx2 float32 flow (NaN kept)."""
    return image_msg_to_flow(msg)
