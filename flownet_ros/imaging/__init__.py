"""Camera images without ROS: decoding (raw encodings, PNG/JPEG), encodings and frame limits.

decode: image fields / messages -> HxWx3 uint8 RGB, output images (flow, colour) -> arrays;
limits: frame sizes and compressed-image headers, checked before any pixel is decoded.
Used by the node (``ros``), the bag tools (``evaluation``) and the benchmarks; imports no ROS.
"""
