"""Bag replay evaluation: rosbag2 I/O, replay through the node, reports, the synthetic sample bag.

Modules: ``bagio`` (reading/writing bags with rosbags), ``replay`` (publish a bag to the node over
ROS 2 and record its outputs), ``report`` (latency / accuracy metrics, plots, offline mode),
``sample_bag`` (synthetic camera sequence with ground-truth flow).
"""
