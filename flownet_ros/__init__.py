"""flownet_ros: FlowNetC / FlowNetS optical flow for ROS 2.

Subpackages: ``ops`` (correlation op), ``models``, ``inference``, ``flow``
(files, colour, metrics, warping), ``ros`` (node), ``data`` + ``train``,
``evaluation`` (bag replay and reports), ``bench``.
"""

__version__ = "0.1.0"
