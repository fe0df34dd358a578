"""Evaluation: accuracy on datasets with ground truth, bag replay through the node, reports.

Modules: ``bagio`` (reading/writing bags with rosbags), ``replay`` (publish a bag to the node over
ROS 2 and record its outputs), ``report`` (latency / accuracy metrics of a bag), ``sample_bag``
(synthetic camera sequence with ground-truth flow).
"""
