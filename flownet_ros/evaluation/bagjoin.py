"""The bags of a report joined by header stamp: camera frames, the node's flows and pairs, ground truth.

Conventions: a flow message stamped like input frame k is the flow from the previous input frame to
frame k (u right, v down, pixels); ``~/flow_pair`` names the older frame when the node skipped frames.
A ground-truth topic (32FC2) stamped like frame k holds the same flow; NaN marks pixels without ground
truth. Camera records the node would refuse (undecodable, beyond the size limits) are skipped and
counted, as the replay does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from flownet_ros.evaluation.bagio import (
    INPUT_BAG_KEY,
    BagError,
    BagReader,
    StampIndex,
    cdr_stamp_ns,
    decode_flow,
    decode_image,
    select_flow_topic,
    select_image_topic,
    stamp_to_ns,
)


class BagSources:
    """Open bags, chosen topics and stamp-joined streams of one report (``close()`` when done).

    ``output_bag`` None = offline (no node outputs). ``flow_topic`` default: ``<ns>/<node>/flow``, else the
    only 32FC2 topic of the output bag.
    """

    def __init__(self, input_bag: Path, output_bag: Optional[Path] = None, topic: Optional[str] = None,
                 gt_topic: Optional[str] = None, flow_topic: Optional[str] = None, node_name: str = "flownet",
                 namespace: str = "", max_pixels: Optional[int] = None):
        self.readers: List[BagReader] = []
        self.max_pixels = max_pixels  # the node's (None: its default): larger frames are refused, as it does
        self.undecodable: List[Tuple[int, str]] = []  # (record index, why)
        try:
            self.input = self._open(input_bag)
            self.topic, self.msgtype = select_image_topic(self.input, topic)
            self.n_frames = self.input.message_count(self.topic)
            self.output = self._open(output_bag) if output_bag is not None else None
            self.flow_topic = self._flow_topic(flow_topic, gt_topic, node_name, namespace) if self.output else None
            self.pair_of = self._pairs() if self.output else {}
            same_bag = self.output is not None and self.output.path.resolve() == self.input.path.resolve()
            self.gt_topic = select_flow_topic(self.input, gt_topic, exclude=[self.flow_topic] if same_bag else [])
            self.flows = StampIndex(self.output, self.flow_topic) if self.output else None
            self.gts = StampIndex(self.input, self.gt_topic) if self.gt_topic else None
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path) -> BagReader:
        bag = BagReader(path)
        bag.open()
        self.readers.append(bag)
        return bag

    def _flow_topic(self, flow_topic: Optional[str], gt_topic: Optional[str], node_name: str, namespace: str) -> str:
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        chosen = flow_topic or f"{ns}/{node_name}/flow"
        if chosen in self.output.topics:
            return chosen
        if flow_topic:
            select_flow_topic(self.output, flow_topic)  # raises, naming the bag and its topics
        found = select_flow_topic(self.output, None, exclude=[gt_topic or ""])
        if found is None:
            raise BagError(f"bag {self.output.path} has no flow output (32FC2) topic; topics: "
                           + ", ".join(sorted(self.output.topics)))
        return found

    def _pairs(self) -> Dict[int, int]:
        """Newer stamp -> older stamp, from the node's ~/flow_pair next to its flow topic."""
        pair_topic = self.flow_topic.rsplit("/", 1)[0] + "/flow_pair"
        if self.output.topics.get(pair_topic) != "sensor_msgs/msg/TimeReference":
            return {}
        return {m.stamp_ns: stamp_to_ns(m.msg.time_ref) for m in self.output.messages([pair_topic])}

    def frames(self) -> Iterator[Tuple[int, np.ndarray]]:
        """(stamp ns, HxWx3 uint8 RGB) of the camera topic in bag order; refused records skipped."""
        for k, m in enumerate(self.input.messages([self.topic])):
            try:
                yield m.stamp_ns, decode_image(m.msg, self.max_pixels)
            except (ValueError, BagError) as err:
                self.undecodable.append((k, str(err)))

    def node_flow(self, stamp: int, shape: Tuple[int, int]) -> Optional[Tuple[np.ndarray, int]]:
        """(the node's flow for the pair ending at ``stamp``, its bag time) or None."""
        out = self.flows.get(stamp)
        if out is None:
            return None
        flow = decode_flow(out.msg)
        if flow.shape[:2] != tuple(shape):
            raise BagError(f"bag {self.output.path}: flow stamped {stamp} is {flow.shape[1]}x{flow.shape[0]} "
                           f"but the image is {shape[1]}x{shape[0]}")
        return flow, out.time_ns

    def ground_truth(self, stamp: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """(flow [H,W,2] with NaN set to 0, valid [H,W]) for the pair ending at ``stamp``, or (None, None)."""
        got = self.gts.get(stamp) if self.gts is not None else None
        if got is None:
            return None, None
        gt = decode_flow(got.msg)
        valid = np.isfinite(gt).all(axis=-1)
        return np.where(valid[..., None], gt, 0).astype(np.float32), valid

    def node_diagnostics(self, node_name: str) -> Dict[str, str]:
        """key/values of the node's last /diagnostics status (status name contains the node name), and
        ``after_last_flow_s``: its bag time minus the last flow's (negative: sampled before the last output)."""
        if self.output is None or "/diagnostics" not in self.output.topics:
            return {}
        last: Dict[str, str] = {}
        for m in self.output.messages(["/diagnostics"]):
            for status in m.msg.status:
                if node_name in status.name:
                    last = {"name": status.name, "message": status.message,
                            **{kv.key: kv.value for kv in status.values}, "time_ns": m.time_ns}
        if last and self.flows is not None and self.flows.times:
            last_flow = max(max(t) for t in self.flows.times.values())
            last["after_last_flow_s"] = f"{(last['time_ns'] - last_flow) / 1e9:.3f}"
        last.pop("time_ns", None)
        return last

    def check_same_recording(self) -> None:
        """Refuse an output bag recorded from another input bag: most of its flow stamps are no input frame's."""
        if self.flows is None or not self.flows.times:
            return
        inputs = {cdr_stamp_ns(m.raw) for m in self.input.messages([self.topic])}
        matched = sum(s in inputs for s in self.flows.times)
        if 2 * matched < len(self.flows.times):
            source = self.output.custom_data.get(INPUT_BAG_KEY)
            raise BagError(f"bag {self.output.path} was not recorded from {self.input.path}: {matched} of its "
                           f"{len(self.flows.times)} flow stamps are frame stamps of {self.topic}"
                           + (f" (it was recorded from {source})" if source else "")
                           + "; --force reports it anyway")

    def unmatched_outputs(self, stamps: List[int]) -> int:
        """Flow outputs whose stamp is no input frame's (the first frame cannot have one)."""
        if self.flows is None:
            return 0
        return len(set(self.flows.times) - set(stamps))

    def close(self) -> None:
        for r in self.readers:
            r.close()
        self.readers = []
