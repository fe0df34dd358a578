"""ROS 2 side of flownet_ros: the ``flownet_node`` node and its plain, ROS-free building blocks.

conversions: numpy -> sensor_msgs output images (decoding is flownet_ros.imaging); pairing: which frames
form a flow pair; worker: latest-frame queue and inference thread; pipeline: flow, colour and motion of
a pair; diagnostics: counters, rates, latency and the DiagnosticStatus; qos: QoS profiles; node: the node.
Importing this package does not import rclpy.
"""
