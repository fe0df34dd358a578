"""Python-side registrations for the C++ ``flownet_ros::correlation`` ops: fake (meta) kernels for
torch.compile / FakeTensor tracing, and autograd. Imported once, after the extension library is loaded."""

from __future__ import annotations

import torch

from flownet_ros.ops.shapes import output_shape


@torch.library.register_fake("flownet_ros::correlation")
def _correlation_fake(f1, f2, max_displacement, stride2, kernel_size, stride1):
    return f1.new_empty(output_shape(f1.shape, max_displacement, stride2, kernel_size, stride1))


@torch.library.register_fake("flownet_ros::correlation_backward")
def _correlation_backward_fake(grad_output, f1, f2, max_displacement, stride2, kernel_size, stride1):
    return (torch.empty_like(f1, memory_format=torch.contiguous_format),
            torch.empty_like(f2, memory_format=torch.contiguous_format))


def _setup_context(ctx, inputs, output):
    f1, f2, max_displacement, stride2, kernel_size, stride1 = inputs
    ctx.save_for_backward(f1, f2)
    ctx.params = (max_displacement, stride2, kernel_size, stride1)


def _backward(ctx, grad_output):
    f1, f2 = ctx.saved_tensors
    g1, g2 = torch.ops.flownet_ros.correlation_backward(grad_output, f1, f2, *ctx.params)
    return g1, g2, None, None, None, None


torch.library.register_autograd("flownet_ros::correlation", _backward, setup_context=_setup_context)
