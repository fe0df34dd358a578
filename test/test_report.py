"""Report numbers on bags whose answer is known: outputs written from the ground truth, known latencies."""

import json
import math

import numpy as np
import pytest

from flownet_ros.evaluation.bagio import (
    IMAGE,
    RATE_KEY,
    TYPESTORE,
    WALL_SPAN_KEY,
    BagError,
    BagReader,
    BagWriter,
    flow_message,
    make_header,
    ns_to_stamp,
)
from flownet_ros.evaluation.report import ReportOptions, evaluate, main
from flownet_ros.evaluation.sample_bag import GT_TOPIC, IMAGE_TOPIC, write_sample_bag
from flownet_ros.flow.metrics import epe
from flownet_ros.flow.warping import photometric_error
from flownet_ros.imaging.decode import image_msg_to_flow, image_msg_to_rgb
from flownet_ros.inference.factory import EstimatorSpec

N = 6
FLOW = "/flownet/flow"
PAIR = "/flownet/flow_pair"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Input bag (6 frames 48x64 + GT at 10 Hz: a few px of motion per frame) and its frames / ground truth."""
    path = write_sample_bag(tmp_path_factory.mktemp("in") / "sample", frames=N, size=(48, 64), fps=10.0,
                            progress=False)
    with BagReader(path) as bag:
        frames = [(m.stamp_ns, image_msg_to_rgb(m.msg)) for m in bag.messages([IMAGE_TOPIC])]
        gts = {m.stamp_ns: image_msg_to_flow(m.msg) for m in bag.messages([GT_TOPIC])}
    return path, frames, gts


def write_outputs(path, outputs, pairs=None, custom=None):
    """Output bag: ``outputs`` = [(stamp, flow, latency_ns)], ``pairs`` = {stamp: older stamp}."""
    with BagWriter(path, "mcap", custom=custom) as w:
        w.add(FLOW, IMAGE)
        if pairs is not None:
            w.add(PAIR, "sensor_msgs/msg/TimeReference")
        for stamp, flow, latency in outputs:
            w.write(FLOW, stamp + latency, flow_message(flow, stamp, "cam"))
            if pairs is not None:
                ref = TYPESTORE.types["sensor_msgs/msg/TimeReference"](
                    header=make_header(stamp, "cam"), time_ref=ns_to_stamp(pairs[stamp]), source="previous_frame")
                w.write(PAIR, stamp + latency + 1000, ref)
    return path


def filled(flow):
    return np.nan_to_num(flow, nan=0.0).astype(np.float32)


def test_outputs_equal_to_ground_truth_score_zero(sample, tmp_path):
    bag, frames, gts = sample
    latencies = [40, 50, 60, 70, 500]  # ms
    outputs = [(s, filled(gts[s]), ms * 1_000_000) for (s, _), ms in zip(frames[1:], latencies)]
    # written out of stamp order (as a --rate 0 replay can): pairing goes by stamp, not bag order
    out = write_outputs(tmp_path / "out", outputs[::-1], custom={WALL_SPAN_KEY: "2.0", RATE_KEY: "0.0"})
    rep = evaluate(ReportOptions(input_bag=bag, output_bag=out, out_dir=tmp_path / "rep", progress=False))
    node, zero = rep["summary"][0], rep["summary"][-1]
    assert rep["gt_topic"] == GT_TOPIC and rep["flow_topic"] == FLOW and rep["mode"] == "ros"
    assert rep["pairs"] == N - 1 and node["outputs"] == N - 1 and node["frames_dropped"] == 0
    assert node["epe"] == pytest.approx(0.0, abs=1e-6) and node["fl_all"] == 0.0
    assert node["latency_ms_median"] == pytest.approx(60.0)
    assert node["latency_ms_max"] == pytest.approx(500.0)
    assert node["latency_ms_p95"] == pytest.approx(np.percentile(latencies, 95))
    assert node["output_rate_hz"] == pytest.approx((N - 2) / 2.0)  # from the replay's wall-clock span
    assert rep["replay_rate"] == 0.0
    # photometric error of the warped newer frame, exactly as the flow utilities compute it
    expect = np.mean([photometric_error(frames[k - 1][1], frames[k][1], filled(gts[frames[k][0]]))
                      for k in range(1, N)])
    assert node["photometric_error"] == pytest.approx(expect)
    assert zero["photometric_error"] > 2 * node["photometric_error"]
    # zero flow: EPE = mean ground-truth magnitude over valid pixels
    mags = [epe(np.zeros_like(filled(g)), filled(g), np.isfinite(g).all(-1)) for g in gts.values()]
    assert zero["epe"] == pytest.approx(np.mean(mags), rel=1e-6)

    files = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert files == ["accuracy.png", "latency.png", "report.json", "report.md", "strip.png"]
    data = json.loads((tmp_path / "rep" / "report.json").read_text())  # strict JSON: NaN written as null
    assert data["summary"][0]["epe"] == pytest.approx(0.0, abs=1e-6) and len(data["per_frame"]) == N - 1
    md = (tmp_path / "rep" / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method |"))
    node_row = next(line for line in md.splitlines() if line.startswith("| node "))
    epe_col = [c.strip() for c in header.split("|")].index("EPE (px)")
    assert [c.strip() for c in node_row.split("|")][epe_col] == "0.000" and "![Latency](latency.png)" in md
    # the strip: one colour scale for all its tiles = the largest |flow| shown (here every frame's ground truth)
    largest = max(float(np.nanmax(np.hypot(g[..., 0], g[..., 1]))) for s, g in gts.items() if s != frames[0][0])
    assert data["strip_scale_px"] == pytest.approx(largest, rel=1e-5)
    assert f"full saturation = {largest:.2f} px" in md


def test_colour_wheel_shows_the_strip_scale():
    from flownet_ros.evaluation.render import colour_wheel
    from flownet_ros.flow.colour import flow_to_color

    wheel = colour_wheel(7.5, size=101)
    at = {(50, 100): (7.5, 0.0), (0, 50): (0.0, -7.5), (50, 50): (0.0, 0.0), (50, 75): (3.75, 0.0)}
    for (row, col), (u, v) in at.items():  # x right, y down, radius 7.5 px = full saturation
        expect = flow_to_color(np.array([[[u, v]]], np.float32), max_flow=7.5)[0, 0]
        assert np.abs(wheel[row, col].astype(int) - expect).max() <= 12, (row, col, wheel[row, col], expect)
    assert (wheel[0, 0] == 255).all()  # outside the disc


def test_dropped_frames_and_pairs_across_a_drop(sample, tmp_path):
    bag, frames, gts = sample
    s = [st for st, _ in frames]
    # frame 2 never got an output; the node then paired frame 3 with frame 1 (its last processed frame)
    flow_31 = filled(gts[s[2]]) * 0  # any flow: EPE is not scored for a pair spanning a dropped frame
    outputs = [(s[1], filled(gts[s[1]]), 10**7), (s[3], flow_31, 10**7),
               (s[4], filled(gts[s[4]]), 10**7), (s[5], filled(gts[s[5]]), 10**7)]
    pairs = {s[1]: s[0], s[3]: s[1], s[4]: s[3], s[5]: s[4]}
    out = write_outputs(tmp_path / "out", outputs, pairs)
    rep = evaluate(ReportOptions(input_bag=bag, output_bag=out, out_dir=tmp_path / "rep", progress=False))
    node = rep["summary"][0]
    assert node["outputs"] == 4 and node["frames_dropped"] == 1
    assert rep["pairs_spanning_dropped_frames"] == 1
    by_index = {f["index"]: f for f in rep["per_frame"]}
    assert by_index[2]["main"]["latency_ms"] is None or math.isnan(by_index[2]["main"]["latency_ms"])
    assert by_index[3]["older_stamp_ns"] == s[1]
    assert math.isnan(by_index[3]["main"]["epe"])  # not comparable with the one-frame ground truth
    assert by_index[3]["main"]["photometric"] == pytest.approx(
        photometric_error(frames[1][1], frames[3][1], flow_31))  # scored on the pair the node used
    assert node["epe"] == pytest.approx(0.0, abs=1e-6)  # the other three equal the ground truth
    # zero flow is scored on the same pair (1, 3), and the accuracy rows average the node's 4 pairs only
    assert by_index[3]["zero"]["photometric"] == pytest.approx(
        np.abs(frames[1][1].astype(np.float32) - frames[3][1]).mean())
    zero = rep["summary"][-1]
    expect = np.mean([by_index[k]["zero"]["photometric"] for k in (1, 3, 4, 5)])
    assert zero["photometric_error"] == pytest.approx(expect)


def test_offline_mode_and_dis_baseline(sample, tmp_path):
    import torch

    from flownet_ros.models import save_checkpoint
    from flownet_ros.models.checkpoint import ModelSpec

    bag, _, _ = sample
    torch.manual_seed(0)
    spec = ModelSpec(width=0.125)
    save_checkpoint(tmp_path / "tiny.pt", spec.build(), spec)
    spec = EstimatorSpec(backend="flownet", checkpoint=str(tmp_path / "tiny.pt"), device="cpu", refine="none")
    rep = evaluate(ReportOptions(input_bag=bag, out_dir=tmp_path / "rep", estimator=spec, baselines=("dis-medium",),
                                 progress=False))
    assert rep["mode"] == "offline" and "width 0.125" in rep["estimator"]
    net, dis, zero = rep["summary"]
    for col in (net, dis):
        assert col["outputs"] == N - 1 and col["frames_dropped"] == 0
        assert col["latency_ms_median"] > 0 and col["output_rate_hz"] > 0
        assert math.isfinite(col["epe"]) and math.isfinite(col["photometric_error"])
    assert dis["epe"] < zero["epe"]  # DIS does track the synthetic motion
    assert "dis" in dis["method"] and (tmp_path / "rep" / "strip.png").is_file()
    # ~/confidence and ~/moving of the main flow: the per-frame moving fraction is recorded and quoted
    fractions = [r["moving_fraction"] for r in rep["per_frame"]]
    assert len(fractions) == N - 1 and all(0.0 <= f <= 1.0 for f in fractions)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "moving objects" in md and f"{100 * max(fractions):.2f} %" in md
    # the same from the command line, the network run both ways
    assert main([str(bag), "--offline", "--backend", "flownet", "--checkpoint", str(tmp_path / "tiny.pt"),
                 "--device", "cpu", "--refine", "none", "--bidirectional", "--out", str(tmp_path / "cli"),
                 "--quiet", "--no-consistency"]) == 0
    cli = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert "bidirectional" in cli["estimator"] and "moving_fraction" not in cli["per_frame"][0]


def test_offline_default_is_the_nodes_adaptive_path_reported_per_frame(sample, tmp_path):
    bag, _, _ = sample
    assert main([str(bag), "--offline", "--device", "cpu", "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["summary"][0]["method"].startswith("adaptive:flownet+dis-medium")
    paths = [f["path"] for f in rep["per_frame"]]
    assert len(paths) == N - 1 and set(paths) <= {"dis", "network"}
    assert f"of {N - 1}" in (tmp_path / "rep" / "report.md").read_text()


def test_cli_errors_name_the_bag(sample, tmp_path, capsys):
    bag, _, _ = sample
    with BagWriter(tmp_path / "empty_out", "mcap") as w:
        w.add("/other", IMAGE)
    assert main([str(bag), "--outputs", str(tmp_path / "empty_out"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "empty_out" in err and "no flow output" in err
    assert main([str(bag), "--outputs", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 1
    assert "missing does not exist" in capsys.readouterr().err
    assert main([str(bag), "--out", str(tmp_path / "r")]) == 2  # neither --outputs nor --offline
    assert main([str(bag), "--outputs", str(bag), "--out", str(tmp_path / "r"), "--gt-topic", IMAGE_TOPIC]) == 1
    assert "not a 32FC2 flow image" in capsys.readouterr().err


def test_same_bag_robot_recording(sample, tmp_path):
    """A robot bag holding both the camera and the node's flow (ros2 bag record of both)."""
    bag, frames, gts = sample
    path = tmp_path / "robot"
    with BagReader(bag) as src, BagWriter(path, "sqlite3") as w:
        w.add(IMAGE_TOPIC, IMAGE)
        w.add(FLOW, IMAGE)
        for m in src.messages([IMAGE_TOPIC]):
            w.write(IMAGE_TOPIC, m.time_ns, raw=m.raw)
        for s, _ in frames[1:]:
            w.write(FLOW, s + 30_000_000, flow_message(filled(gts[s]), s, "cam"))
    rep = evaluate(ReportOptions(input_bag=path, output_bag=path, out_dir=tmp_path / "rep", progress=False))
    assert rep["gt_topic"] is None  # the node's own flow is not taken for ground truth
    assert rep["summary"][0]["outputs"] == N - 1
    assert rep["summary"][0]["latency_ms_median"] == pytest.approx(30.0)
    assert rep["summary"][0]["output_rate_hz"] == pytest.approx(10.0, rel=1e-3)  # bag times = receive times (10 Hz)
    assert not (tmp_path / "rep" / "accuracy.png").read_bytes() == b""
    with pytest.raises(BagError, match="robot"):
        evaluate(ReportOptions(input_bag=path, output_bag=path, out_dir=tmp_path / "rep2", topic="/nope",
                               progress=False))


def test_fl_all_is_pooled_over_valid_pixels_like_evaluate():
    """Fl-all of a bag = outlier pixels / valid pixels over all pairs (KITTI, and python -m
    flownet_ros.evaluation.evaluate: one scoring module), not the mean of per-pair rates: here 1/5,
    where the mean would be 1/2."""
    from flownet_ros.evaluation.scoring import Series, score_pair, summarize

    series = Series("method")
    img = np.zeros((1, 4, 3), np.uint8)
    gt = np.zeros((1, 4, 2), np.float32)
    series.add(score_pair(np.zeros_like(gt), gt, None, img, img), latency_ms=1.0)  # 0 outliers of 4 valid px
    series.add(score_pair(np.full_like(gt, 10.0), gt, np.array([[True, False, False, False]]), img, img),
               latency_ms=1.0)  # 1 of 1
    assert [s.fl_all for s in series.scores] == [0.0, 1.0]
    assert summarize(series)["fl_all"] == pytest.approx(0.2)


def test_outputs_of_another_bag_are_refused_unless_forced_and_old_outputs_are_cleared(sample, tmp_path, capsys):
    bag, frames, gts = sample
    other = write_outputs(tmp_path / "other", [(s + 7, filled(gts[s]), 10**7) for s, _ in frames[1:]],
                          custom={"flownet_ros.input_bag": "/elsewhere/bag"})
    out = tmp_path / "rep"
    assert main([str(bag), "--outputs", str(other), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{other} was not recorded from" in err and "0 of its 5 flow stamps" in err
    assert "/elsewhere/bag" in err and "--force" in err
    assert not out.exists()  # a report that fails leaves no folder
    out.mkdir()
    (out / "latency.png").write_bytes(b"plot of an earlier run")
    assert main([str(bag), "--outputs", str(other), "--out", str(out), "--quiet", "--force"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["outputs_without_input"] == N - 1 and rep["summary"][0]["outputs"] == 0
    assert not (out / "latency.png").exists()  # nothing to plot this time, and the old plot is gone
    assert (out / "report.md").is_file() and (out / "accuracy.png").is_file()


@pytest.mark.parametrize("frames", [0, 1])
def test_a_bag_without_a_frame_pair_is_an_error(tmp_path, capsys, frames):
    from flownet_ros.evaluation.bagio import rgb_message

    with BagWriter(tmp_path / "short", "mcap") as w:
        w.add(IMAGE_TOPIC, IMAGE)
        for k in range(frames):
            w.write(IMAGE_TOPIC, 10**9 + k, rgb_message(np.zeros((8, 8, 3), np.uint8), 10**9 + k, "cam"))
    assert main([str(tmp_path / "short"), "--offline", "--out", str(tmp_path / "rep"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "short") in err and "frame" in err, err
    assert not (tmp_path / "rep").exists()


def test_a_quoted_tilde_is_expanded(sample, tmp_path, monkeypatch):
    """``--out '~/rep'`` (quoted, or from make) means the home folder, not a folder named '~'."""
    bag, frames, gts = sample
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "bag").symlink_to(bag)
    write_outputs(tmp_path / "out", [(s, filled(gts[s]), 10**7) for s, _ in frames[1:]])
    monkeypatch.chdir(tmp_path)
    assert main(["~/bag", "--outputs", "~/out", "--out", "~/rep", "--quiet"]) == 0
    assert (tmp_path / "rep" / "report.md").is_file() and not (tmp_path / "~").exists()
