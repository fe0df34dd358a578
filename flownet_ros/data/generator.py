"""Flying-Chairs-style training pairs from real photographs, generated in torch (CPU or CUDA, one code path).

A scene is a background photo crop (possibly defocused) plus up to ``max_objects`` foreground objects
(star-shaped blobs and ellipses, convex polygons, groups of thin bars) textured with other photo crops or
flat, texture-poor fills (walls, signs). Every layer has its own planar motion, a homography
(translation with a log-uniform magnitude from a fraction of a pixel to ~80 px, horizontal-heavy;
in-plane rotation; zoom; perspective). Layers are composited back to front in both frames, so the
ground truth is exact: the flow at a frame-1 pixel is the motion of the front-most layer there (alpha
>= 0.5), and a pixel is valid unless its target leaves the image or another layer is in front there in
frame 2 (occlusion).
Then the camera (:func:`flownet_ros.data.photometric.camera_effects`): exposure change of frame 2,
gamma, blur, sensor noise, JPEG; the background may be defocused.

Determinism: the pair of (seed, index) depends on nothing else (not on the batch it is drawn in);
all random parameters come from ``numpy.random.default_rng([seed, index])``. On CUDA the per-pixel
noise differs from the CPU's, everything else is the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from flownet_ros.data.homography import corner_motion, similarity
from flownet_ros.data.photometric import CameraConfig, camera_effects, gaussian_blur

REFERENCE_WIDTH = 512.0
POLYGONS, SIDES = 3, 8  # half-plane slots of the polygon shapes


@dataclass(frozen=True)
class SceneConfig:
    """Generator parameters; pixel values are at 512 px width and scale with the image width."""

    min_objects: int = 0
    max_objects: int = 6
    object_size: Tuple[float, float] = (0.08, 0.4)   # object radius, fraction of min(H, W)
    motion_px: Tuple[float, float] = (0.25, 80.0)     # log-uniform range of a layer's translation (px)
    static_camera_prob: float = 0.08                   # the background does not move
    static_object_prob: float = 0.25                   # an object moves with the background
    vertical: float = 0.6                              # vertical translation relative to horizontal
    rotation_deg: Tuple[float, float] = (2.0, 10.0)    # std of the rotation: background, objects
    log_zoom: Tuple[float, float] = (0.03, 0.08)       # std of log(zoom): background, objects
    perspective: float = 0.15                          # corner jitter, fraction of the translation
    photo_scale: Tuple[float, float] = (0.6, 1.6)      # image px per photo px
    flat_prob: float = 0.15                            # an object gets a flat, texture-poor fill
    defocus_prob: float = 0.25                         # the background is out of focus
    defocus_sigma: Tuple[float, float] = (1.0, 4.0)    # px
    camera: CameraConfig = field(default_factory=CameraConfig)

    def __post_init__(self):
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 0 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        lo, hi = self.motion_px
        if not 0 < lo <= hi:
            raise ValueError(f"motion_px must be 0 < low <= high, got {self.motion_px}")


class PhotoAtlas:
    """All photos packed into one float tensor [1,3,Ha,Wa] (0..1) so a batch samples them in one call."""

    def __init__(self, photos: Sequence[np.ndarray], device: torch.device | str = "cpu", width: int = 4096):
        if not photos:
            raise ValueError("no photos for the atlas")
        self.sizes = [(int(p.shape[0]), int(p.shape[1])) for p in photos]
        width = max(width, max(w for _, w in self.sizes))
        order = sorted(range(len(photos)), key=lambda i: -self.sizes[i][0])
        rects, x, y, shelf = [None] * len(photos), 0, 0, 0
        for i in order:  # shelf packing, tallest first
            h, w = self.sizes[i]
            if x + w > width:
                x, y, shelf = 0, y + shelf, 0
            rects[i], x, shelf = (x, y), x + w, max(shelf, h)
        atlas = np.zeros((y + shelf, width, 3), np.uint8)
        for (x0, y0), p in zip(rects, photos):
            atlas[y0:y0 + p.shape[0], x0:x0 + p.shape[1]] = p[..., :3]
        self.device = torch.device(device)
        self.tensor = torch.from_numpy(atlas).to(self.device).permute(2, 0, 1)[None].float().div_(255.0)
        self.rects = torch.tensor([[x0, y0, w, h] for (x0, y0), (h, w) in zip(rects, self.sizes)],
                                  dtype=torch.float32, device=self.device)

    def sample(self, photo: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Bilinear colours [B,3,H,W] of photos ``photo`` [B] at photo pixel positions ``q`` [B,H,W,2]
        (pixel centres at integers; clamped to the photo's border)."""
        r = self.rects[photo].view(-1, 1, 1, 4)
        x = r[..., 0] + q[..., 0].clamp(min=0).minimum(r[..., 2] - 1)
        y = r[..., 1] + q[..., 1].clamp(min=0).minimum(r[..., 3] - 1)
        hh, ww = self.tensor.shape[-2:]
        grid = torch.stack([(x + 0.5) * (2.0 / ww) - 1.0, (y + 0.5) * (2.0 / hh) - 1.0], dim=-1)
        return F.grid_sample(self.tensor.expand(q.shape[0], -1, -1, -1), grid, mode="bilinear",
                             padding_mode="border", align_corners=False)


# ---- random scene parameters (NumPy, per sample) -----------------------------------------------

def _rotation(rng, std_deg: float, limit: float) -> float:
    return float(np.clip(rng.normal(0, math.radians(std_deg)), -limit, limit))


def layer_motion(rng: np.random.Generator, size: Tuple[int, int], centre: Sequence[float], cfg: SceneConfig,
                 obj: bool) -> np.ndarray:
    """3x3 frame-1 -> frame-2 homography of one layer (module docstring), rotating/zooming about ``centre``."""
    h, w = size
    px = w / REFERENCE_WIDTH
    lo, hi = np.log(np.asarray(cfg.motion_px) * px)
    m = float(np.exp(rng.uniform(lo, hi)))
    heading = rng.uniform(0, 2 * np.pi)
    shift = m * np.array([np.cos(heading), cfg.vertical * np.sin(heading)])
    reach = m / (0.5 * math.hypot(w, h))  # rotation / zoom whose displacement at the border is about m
    angle = _rotation(rng, cfg.rotation_deg[obj], reach)
    zoom = float(np.exp(np.clip(rng.normal(0, cfg.log_zoom[obj]), -reach, reach)))
    jitter = rng.uniform(-cfg.perspective, cfg.perspective, (4, 2)) * m
    return corner_motion(size, shift, angle, zoom, jitter, centre)


def _star(rng) -> Dict[str, np.ndarray]:
    """Radius function r(theta) = r0 (1 + sum a_k cos(k theta + phi_k)): ellipses (k = 2) and blobs."""
    k = np.arange(1, 5)
    amp = rng.uniform(-0.35, 0.35, 4) / k
    if rng.random() < 0.35:  # ellipse-like
        amp = np.array([0.0, rng.uniform(-0.45, 0.45), 0.0, 0.0])
    return {"kind": 1, "star": np.r_[rng.uniform(0.6, 0.95), amp, rng.uniform(0, 2 * np.pi, 4)]}


def _polygons(rng) -> Dict[str, np.ndarray]:
    """Up to 3 convex polygons as half-planes n . p < d: one polygon of 3-8 sides, or 2-3 thin bars."""
    planes = np.zeros((POLYGONS, SIDES, 3))
    planes[:, :, 2] = 1e3                      # unused half-plane: always inside
    planes[:, 0, 2] = -1e3                     # unused polygon: never inside
    if rng.random() < 0.6:
        n = int(rng.integers(3, SIDES + 1))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        planes[0, :n] = np.c_[np.cos(ang), np.sin(ang), rng.uniform(0.45, 0.95, n)]
    else:
        for j in range(int(rng.integers(2, 4))):
            beta, off = rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4, 2)
            length, width = rng.uniform(0.4, 0.95), rng.uniform(0.04, 0.2)
            for s, (a, half) in enumerate(((beta, length), (beta + np.pi, length), (beta + np.pi / 2, width),
                                          (beta - np.pi / 2, width))):
                n = np.array([np.cos(a), np.sin(a)])
                planes[j, s] = [n[0], n[1], half + n @ off]
            planes[j, 4:, 2] = 1e3
    return {"kind": 2, "planes": planes}


def _texture(rng, n_photos: int, flat_prob: float) -> Dict[str, object]:
    flat = rng.random() < flat_prob
    return {"photo": int(rng.integers(n_photos)), "flat": flat,
            "flat_colour": rng.uniform(0.05, 0.95) + rng.uniform(-0.15, 0.15, 3),
            "flat_gradient": rng.normal(0, 0.15, (3, 2)), "flat_wave": np.r_[rng.uniform(0.002, 0.02, 2),
                                                                           rng.uniform(0, 2 * np.pi)]}


def sample_scene(rng: np.random.Generator, size: Tuple[int, int], photo_sizes: Sequence[Tuple[int, int]],
                 cfg: SceneConfig) -> List[Dict[str, object]]:
    """Parameters of every layer of one scene: [background, objects...] (1 + max_objects entries)."""
    h, w = size
    layers = []
    # the background is always a photo: a flat background's motion could not be seen at all, and learning to
    # guess it teaches the network to invent motion in sky and walls; flat objects show theirs at their edges
    tex = _texture(rng, len(photo_sizes), 0.0)
    ph, pw = photo_sizes[tex["photo"]]
    cover = 1.2 * max(w / pw, h / ph)
    scale = max(rng.uniform(*cfg.photo_scale), cover)
    half = np.array([w, h]) / (2 * scale)
    centre_photo = [rng.uniform(min(half[0], pw / 2), max(pw - half[0], pw / 2)),
                    rng.uniform(min(half[1], ph / 2), max(ph - half[1], ph / 2))]
    a1 = similarity(scale, _rotation(rng, 5.0, 0.2), centre_photo, ((w - 1) / 2, (h - 1) / 2))
    still = rng.random() < cfg.static_camera_prob
    motion = np.eye(3) if still else layer_motion(rng, size, (rng.uniform(0, w), rng.uniform(0, h)), cfg, False)
    sigma = rng.uniform(*cfg.defocus_sigma) if rng.random() < cfg.defocus_prob else 0.0
    layers.append({**tex, "a1": a1, "motion": motion, "present": True, "kind": 0, "defocus": sigma})
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for k in range(cfg.max_objects):
        tex = _texture(rng, len(photo_sizes), cfg.flat_prob)
        ph, pw = photo_sizes[tex["photo"]]
        r_img = rng.uniform(*cfg.object_size) * min(h, w)
        scale = rng.uniform(*cfg.photo_scale)
        r_photo = r_img / scale
        c_photo = [rng.uniform(min(r_photo, pw / 2), max(pw - r_photo, pw / 2)),
                   rng.uniform(min(r_photo, ph / 2), max(ph - r_photo, ph / 2))]
        c_img = np.array([rng.uniform(-0.05, 1.05) * w, rng.uniform(-0.05, 1.05) * h])
        a1 = similarity(scale, rng.uniform(0, 2 * np.pi), c_photo, c_img)
        own = np.eye(3) if rng.random() < cfg.static_object_prob else layer_motion(
            rng, size, _apply(motion, c_img), cfg, True)
        shape = _star(rng) if rng.random() < 0.5 else _polygons(rng)
        layers.append({**tex, **shape, "a1": a1, "motion": own @ motion, "present": k < n_obj,
                       "centre": c_photo, "r_photo": r_photo, "r_img": r_img})
    return layers


def _apply(h: np.ndarray, p: Sequence[float]) -> np.ndarray:
    v = h @ np.array([p[0], p[1], 1.0])
    return v[:2] / v[2]


# ---- batched rendering (torch) -------------------------------------------------------------------

def stack_scenes(scenes: Sequence[List[Dict[str, object]]], device: torch.device) -> Dict[str, torch.Tensor]:
    """Layer parameters of B scenes -> tensors [B, L, ...] on ``device``."""
    def t(key, fill=0.0, dtype=torch.float32):
        rows = [[np.asarray(layer.get(key, fill), dtype=np.float64) for layer in s] for s in scenes]
        return torch.as_tensor(np.array(rows), dtype=dtype, device=device)

    a1 = np.array([[layer["a1"] for layer in s] for s in scenes])
    motion = np.array([[layer["motion"] for layer in s] for s in scenes])
    a2 = motion @ a1
    return {
        "inv1": torch.as_tensor(np.linalg.inv(a1), dtype=torch.float32, device=device),  # image 1 -> photo px
        "inv2": torch.as_tensor(np.linalg.inv(a2), dtype=torch.float32, device=device),  # image 2 -> photo px
        "motion": torch.as_tensor(motion, dtype=torch.float32, device=device),
        "photo": t("photo", dtype=torch.long), "flat": t("flat", dtype=torch.bool),
        "present": t("present", dtype=torch.bool), "kind": t("kind", dtype=torch.long),
        "flat_colour": t("flat_colour", np.zeros(3)), "flat_gradient": t("flat_gradient", np.zeros((3, 2))),
        "flat_wave": t("flat_wave", np.zeros(3)), "star": t("star", np.zeros(9)),
        "planes": t("planes", np.zeros((POLYGONS, SIDES, 3))), "centre": t("centre", np.zeros(2)),
        "r_photo": t("r_photo", 1.0), "r_img": t("r_img", 1.0),
        "defocus": torch.as_tensor([float(s[0]["defocus"]) for s in scenes], device=device),
    }


def pixel_grid(size: Tuple[int, int], device) -> torch.Tensor:
    """[H,W,2] pixel centres (x, y)."""
    ys, xs = torch.meshgrid(torch.arange(size[0], device=device, dtype=torch.float32),
                            torch.arange(size[1], device=device, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def apply_homography(h: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Homographies [B,3,3] applied to [H,W,2] positions -> [B,H,W,2]."""
    x, y = grid[..., 0], grid[..., 1]
    hh = h.view(-1, 1, 1, 3, 3)
    den = hh[..., 2, 0] * x + hh[..., 2, 1] * y + hh[..., 2, 2]
    return torch.stack([(hh[..., 0, 0] * x + hh[..., 0, 1] * y + hh[..., 0, 2]) / den,
                        (hh[..., 1, 0] * x + hh[..., 1, 1] * y + hh[..., 1, 2]) / den], dim=-1)


def flat_fill(q: torch.Tensor, colour: torch.Tensor, gradient: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
    """Texture-poor fill [B,3,H,W] at photo positions q [B,H,W,2]: a colour, a gentle gradient and one faint wave."""
    p = (q - q.mean(dim=(1, 2), keepdim=True)) / 500.0
    grad = torch.einsum("bcd,bhwd->bchw", gradient, p)
    w = torch.sin(q[..., 0] * wave[:, 0, None, None] + q[..., 1] * wave[:, 1, None, None] + wave[:, 2, None, None])
    return (colour.view(-1, 3, 1, 1) + grad + 0.02 * w[:, None]).clamp(0, 1)


MASK_TEXELS, MASK_EXTENT = 128, 1.2  # shape masks: texels across [-extent, extent] of the unit object


def shape_masks(layer: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Coverage [B,1,S,S] (0..1, antialiased over one texel) of each sample's object shape on a grid over
    its unit disc: star-shaped radius functions (kind 1) or unions of convex polygons (kind 2).

    Computed once per batch and layer, then sampled in both frames like a texture.
    """
    dev = layer["star"].device
    axis = torch.linspace(-MASK_EXTENT, MASK_EXTENT, MASK_TEXELS, device=dev)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    p = torch.stack([xs, ys], dim=-1)  # [S,S,2]
    rho = torch.linalg.vector_norm(p, dim=-1)
    theta = torch.atan2(p[..., 1], p[..., 0])
    s = layer["star"]
    k = torch.arange(1, 5, device=dev, dtype=torch.float32)
    harmonics = torch.cos(k * theta[None, ..., None] + s[:, None, None, 5:9]) * s[:, None, None, 1:5]
    star = s[:, 0, None, None] * (1 + harmonics.sum(-1)) - rho
    planes = layer["planes"]  # [B,P,S,3]
    dist = planes[:, None, None, :, :, 2] - torch.einsum("bpsd,hwd->bhwps", planes[..., :2], p)
    poly = dist.min(-1).values.max(-1).values
    margin = torch.where((layer["kind"] == 1).view(-1, 1, 1), star, poly)
    texels_per_unit = (MASK_TEXELS - 1) / (2 * MASK_EXTENT)
    return (margin * texels_per_unit + 0.5).clamp(0, 1)[:, None]


def shape_alpha(mask: torch.Tensor, q: torch.Tensor, layer: Dict[str, torch.Tensor]) -> torch.Tensor:
    """Coverage [B,H,W] of the object at photo positions q [B,H,W,2], sampled from its mask [B,1,S,S]."""
    p = (q - layer["centre"].view(-1, 1, 1, 2)) / (layer["r_photo"].view(-1, 1, 1, 1) * MASK_EXTENT)
    return F.grid_sample(mask, p, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]


def layers_of(params: Dict[str, torch.Tensor]) -> List[Dict[str, torch.Tensor]]:
    """Per-layer views {key: [B, ...]} of the batched parameters, with each object's shape mask."""
    n_layers = params["inv1"].shape[1]
    layers = [{k: v[:, li] for k, v in params.items() if v.dim() >= 2 and v.shape[1] == n_layers}
              for li in range(n_layers)]
    for li, layer in enumerate(layers):
        if li and bool(layer["present"].any()):
            layer["mask"] = shape_masks(layer)
    return layers


def render(atlas: PhotoAtlas, layers: List[Dict[str, torch.Tensor]], inv: str, defocus: torch.Tensor,
           grid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Composite one frame back to front -> (image [B,3,H,W] 0..1, front layer id [B,H,W] long).

    ``layer[inv]`` [B,3,3] maps the frame's pixels to the layer's photo pixels (``inv1``, ``inv2``)."""
    b = defocus.shape[0]
    img = torch.zeros(b, 3, *grid.shape[:2], device=grid.device)
    ids = torch.zeros(b, *grid.shape[:2], dtype=torch.long, device=grid.device)
    for li, layer in enumerate(layers):
        if li and "mask" not in layer:
            continue
        q = apply_homography(layer[inv], grid)
        tex = atlas.sample(layer["photo"], q)
        if bool(layer["flat"].any()):
            fill = flat_fill(q, layer["flat_colour"], layer["flat_gradient"], layer["flat_wave"])
            tex = torch.where(layer["flat"].view(-1, 1, 1, 1), fill, tex)
        if li == 0:
            img = gaussian_blur(tex, defocus, radius=12)
            continue
        alpha = shape_alpha(layer["mask"], q, layer) * layer["present"].view(-1, 1, 1)
        img = img + alpha[:, None] * (tex - img)
        ids = torch.where(alpha >= 0.5, li, ids)
    return img, ids


def flow_and_valid(motion: torch.Tensor, ids1: torch.Tensor, ids2: torch.Tensor, grid: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flow [B,2,H,W] of the front layer of each frame-1 pixel, and valid [B,H,W]: the target is inside
    the image and the same layer is in front at its nearest frame-2 pixel."""
    flow = torch.zeros(ids1.shape + (2,), device=grid.device)
    for li in range(motion.shape[1]):
        sel = ids1 == li
        if bool(sel.any()):
            flow = torch.where(sel[..., None], apply_homography(motion[:, li], grid) - grid, flow)
    target = grid + flow
    h, w = grid.shape[:2]
    inside = (target[..., 0] >= 0) & (target[..., 0] <= w - 1) & (target[..., 1] >= 0) & (target[..., 1] <= h - 1)
    norm = torch.stack([(target[..., 0] + 0.5) * (2.0 / w) - 1, (target[..., 1] + 0.5) * (2.0 / h) - 1], dim=-1)
    front2 = F.grid_sample(ids2[:, None].float(), norm, mode="nearest", align_corners=False)[:, 0]
    return flow.permute(0, 3, 1, 2).contiguous(), inside & (front2.round().long() == ids1)


class SceneGenerator:
    """Renders batches of pairs on one device: ``batch(seed, indices)`` (module docstring)."""

    def __init__(self, photos: Sequence[np.ndarray], size: Tuple[int, int] = (384, 512),
                 config: Optional[SceneConfig] = None, device: torch.device | str = "cpu"):
        self.size = (int(size[0]), int(size[1]))
        if min(self.size) < 16:
            raise ValueError(f"size must be at least 16x16, got {size}")
        self.config = config or SceneConfig()
        self.device = torch.device(device)
        self.atlas = PhotoAtlas(photos, self.device)
        self.grid = pixel_grid(self.size, self.device)

    @torch.no_grad()
    def batch(self, seed: int, indices: Sequence[int], layers: bool = False) -> Dict[str, torch.Tensor]:
        """Pairs (seed, i) for i in ``indices`` -> img1, img2 float [B,3,H,W] 0..255 (8-bit values),
        flow float32 [B,2,H,W] px, valid bool [B,H,W], on the generator's device. With ``layers``
        also ``layer`` long [B,H,W] (front layer of each frame-1 pixel, 0 = background) and
        ``independent`` bool [B,L] (the layer moves other than the background: a moving object)."""
        rngs = [np.random.default_rng([int(seed), int(i)]) for i in indices]
        params = stack_scenes([sample_scene(r, self.size, self.atlas.sizes, self.config) for r in rngs],
                              self.device)
        layers = layers_of(params)
        img1, ids1 = render(self.atlas, layers, "inv1", params["defocus"], self.grid)
        img2, ids2 = render(self.atlas, layers, "inv2", params["defocus"], self.grid)
        flow, valid = flow_and_valid(params["motion"], ids1, ids2, self.grid)
        img1, img2 = camera_effects(img1, img2, rngs, self.config.camera)
        out = {"img1": torch.round(img1 * 255.0), "img2": torch.round(img2 * 255.0), "flow": flow, "valid": valid}
        if layers:
            motion = params["motion"]
            out["layer"] = ids1
            out["independent"] = (motion - motion[:, :1]).abs().flatten(2).amax(2) > 1e-6
        return out


def to_numpy_sample(batch: Dict[str, torch.Tensor], k: int = 0) -> Dict[str, np.ndarray]:
    """Sample ``k`` of a generator batch as a dataset item (uint8 HWC images, HxWx2 flow, HxW valid)."""
    img = lambda key: batch[key][k].permute(1, 2, 0).to(torch.uint8).cpu().numpy()  # noqa: E731
    return {"img1": img("img1"), "img2": img("img2"), "flow": batch["flow"][k].permute(1, 2, 0).cpu().numpy(),
            "valid": batch["valid"][k].cpu().numpy()}


def load_photos(photos: str = "train") -> List[np.ndarray]:
    """``train``: the downloaded training photos + scikit-image's; ``skimage``: scikit-image's only (no download)."""
    from flownet_ros.data import photos as photo_sets

    if photos == "skimage":
        return photo_sets.skimage_photos()
    if photos == "train":
        return photo_sets.training_photos()
    raise ValueError(f"photos must be 'train' or 'skimage', got {photos!r}")


class GeneratedFlowDataset(Dataset):
    """Dataset view of the generator: item ``i`` = pair (seed, i), rendered on the CPU.

    Training renders whole batches on the training device instead (:meth:`generator`). Extra keyword
    arguments override :class:`SceneConfig` fields.
    """

    def __init__(self, size: Tuple[int, int] = (384, 512), length: int = 1_000_000, seed: int = 0,
                 photos: str = "train", **config):
        known = {f.name for f in fields(SceneConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise TypeError(f"unknown scene generator option(s) {unknown}; known: {sorted(known)}")
        if int(length) < 1:
            raise ValueError(f"length must be positive, got {length}")
        self.size, self.length, self.seed, self.photos = (int(size[0]), int(size[1])), int(length), int(seed), photos
        self.config = replace(SceneConfig(), **{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
        self._generators: Dict[str, SceneGenerator] = {}

    def generator(self, device: torch.device | str = "cpu") -> SceneGenerator:
        key = str(torch.device(device))
        if key not in self._generators:
            self._generators[key] = SceneGenerator(load_photos(self.photos), self.size, self.config, device)
        return self._generators[key]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        index = int(index) + (self.length if int(index) < 0 else 0)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} generated pairs")
        return to_numpy_sample(self.generator("cpu").batch(self.seed, [index]))


def export_chairs(directory, n: int, size: Tuple[int, int] = (384, 512), seed: int = 0, photos: str = "train",
                  val_fraction: float = 640 / 22872, **config):
    """Write ``n`` generated pairs in the Flying Chairs layout and return the split-list path.

    Files: ``NNNNN_img1.ppm``, ``NNNNN_img2.ppm``, ``NNNNN_flow.flo`` (numbered from 00001) and
    ``FlyingChairs_train_val.txt`` with one line per pair: ``1`` = train, ``2`` = validation (the
    last ``round(n * val_fraction)`` pairs, at least one when n >= 2). Pair i is item i-1 of
    ``GeneratedFlowDataset(size, n, seed, photos)``. The Chairs format has no valid mask, so the
    occlusion mask is not stored.
    """
    import cv2

    from flownet_ros.flow.io import write_flo

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ds = GeneratedFlowDataset(size=size, length=max(1, n), seed=seed, photos=photos, **config)
    n_val = min(max(1, int(round(n * val_fraction))), n - 1) if n >= 2 else 0
    lines = []
    for i in range(n):
        item = ds[i]
        stem = out / f"{i + 1:05d}"
        for key in ("img1", "img2"):
            path = f"{stem}_{key}.ppm"
            if not cv2.imwrite(path, np.ascontiguousarray(item[key][:, :, ::-1])):
                raise OSError(f"{path}: OpenCV could not write the image")
        write_flo(f"{stem}_flow.flo", item["flow"])
        lines.append("2" if i >= n - n_val else "1")
    split = out / "FlyingChairs_train_val.txt"
    split.write_text("".join(line + "\n" for line in lines))
    return split
