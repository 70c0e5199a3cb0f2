"""Mesh reconstruction, TerrainMesh style: a grid mesh in the camera's view, refined by GraphConv.

The mesh is a regular grid of vertices over the image (pixel positions fixed, depth free), so it
covers every pixel. Its vertex depths start as a regularised least-squares fit to the sparse depth;
each refinement stage samples image features at the vertices' image positions (vert_align), runs
GraphConv over the mesh edges and moves every vertex along its viewing ray by a predicted depth
offset. Vertices only move along rays, so their image positions, and the features sampled there,
stay where they are. A linear head gives per-vertex semantic logits. Everything is in metres in
PyTorch3D's camera view space; PyTorch3D's own unprojection and MeshRasterizer use the same
camera, so a vertex unprojected at pixel (u, v) renders at pixel (u, v).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch3d.ops import GraphConv, vert_align
from pytorch3d.renderer import MeshRasterizer, PerspectiveCameras, RasterizationSettings
from pytorch3d.structures import Meshes
from torch import nn


def grid_faces(rows: int, cols: int) -> torch.Tensor:
    """(2 (rows-1) (cols-1), 3) triangles over a rows x cols vertex grid numbered row by row."""
    if rows < 2 or cols < 2:
        raise ValueError(f"a grid mesh needs at least 2x2 vertices to have faces, got {rows}x{cols}")
    index = torch.arange(rows * cols).view(rows, cols)
    top_left, top_right = index[:-1, :-1].reshape(-1), index[:-1, 1:].reshape(-1)
    bottom_left, bottom_right = index[1:, :-1].reshape(-1), index[1:, 1:].reshape(-1)
    return torch.cat([torch.stack([top_left, bottom_left, top_right], 1), torch.stack([top_right, bottom_left, bottom_right], 1)])


def cameras_for(intrinsics: torch.Tensor, image_size: tuple[int, int]) -> PerspectiveCameras:
    """PyTorch3D cameras at the origin looking down +Z, from (B, 3, 3) pixel intrinsics (x right, y down)."""
    batch = len(intrinsics)
    return PerspectiveCameras(focal_length=torch.stack([intrinsics[:, 0, 0], intrinsics[:, 1, 1]], 1),
                              principal_point=torch.stack([intrinsics[:, 0, 2], intrinsics[:, 1, 2]], 1),
                              in_ndc=False, image_size=torch.tensor([image_size] * batch), device=intrinsics.device)


def unproject(intrinsics: torch.Tensor, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """(B, N, 3) view-space points at image positions pixels (B, N, 2: x right, y down) and depth (B, N).

    The inverse of the cameras' transform_points_screen, which the rasterizer follows: PyTorch3D's
    view space has +X left and +Y up. (PerspectiveCameras.unproject_points with in_ndc=False does
    not invert it: it mirrors points about the principal point.)
    """
    focal = torch.stack([intrinsics[:, 0, 0], intrinsics[:, 1, 1]], -1).unsqueeze(1)
    centre = torch.stack([intrinsics[:, 0, 2], intrinsics[:, 1, 2]], -1).unsqueeze(1)
    xy = -(pixels - centre) / focal * depth.unsqueeze(-1)
    return torch.cat([xy, depth.unsqueeze(-1)], -1)


def fit_grid_depth(sparse: torch.Tensor, grid: tuple[int, int], smoothness: float, prior_depth: float) -> torch.Tensor:
    """(B, rows*cols) vertex depths whose bilinear interpolation best fits the measured pixels of
    sparse (B, 1, H, W), plus `smoothness` x the squared differences of neighbouring vertices and a
    weak pull to prior_depth, so that an image with few or no measurements still has an answer."""
    rows, cols = grid
    batch, _, height, width = sparse.shape
    count = rows * cols
    sparse = sparse.double()  # the weak prior is 1e-3 of the data terms: float32 would lose it
    smooth = _neighbour_differences(rows, cols).to(sparse)
    system = smoothness * smooth.T @ smooth + 1e-3 * torch.eye(count, dtype=sparse.dtype, device=sparse.device)
    fitted = []
    for image in sparse[:, 0]:
        ys, xs = (image > 0).nonzero(as_tuple=True)
        indices, weights = _bilinear((xs + 0.5).double() / width * (cols - 1), (ys + 0.5).double() / height * (rows - 1), rows, cols)
        normal = system.clone().index_put_((indices.unsqueeze(2).expand(-1, -1, 4), indices.unsqueeze(1).expand(-1, 4, -1)),
                                           weights.unsqueeze(2) * weights.unsqueeze(1), accumulate=True)
        right = torch.full((count,), 1e-3 * prior_depth, dtype=sparse.dtype, device=sparse.device)
        right = right.index_add(0, indices.reshape(-1), (weights * image[ys, xs].unsqueeze(1)).reshape(-1))
        fitted.append(torch.linalg.solve(normal, right))
    return torch.stack(fitted).float()


def _bilinear(x: torch.Tensor, y: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertex indices (N, 4) and weights (N, 4) interpolating grid positions (x, y)."""
    x0, y0 = x.floor().clamp(0, cols - 2), y.floor().clamp(0, rows - 2)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    rows_above = y0 * cols
    indices = torch.stack([rows_above + x0, rows_above + x0 + 1, rows_above + cols + x0, rows_above + cols + x0 + 1], 1)
    weights = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    return indices, weights


def _neighbour_differences(rows: int, cols: int) -> torch.Tensor:
    index = torch.arange(rows * cols).view(rows, cols)
    pairs = torch.cat([torch.stack([index[:, :-1].reshape(-1), index[:, 1:].reshape(-1)], 1),
                       torch.stack([index[:-1, :].reshape(-1), index[1:, :].reshape(-1)], 1)])
    matrix = torch.zeros(len(pairs), rows * cols)
    matrix[torch.arange(len(pairs)), pairs[:, 0]] = 1.0
    matrix[torch.arange(len(pairs)), pairs[:, 1]] = -1.0
    return matrix


class MeshReconstructionNet(nn.Module):
    """inputs: {"rgb" (B,3,H,W) normalised, "sparse" (B,1,H,W) metres, "intrinsics" (B,3,3) pixels}."""

    def __init__(self, num_classes: int, grid: tuple[int, int], stages: int, hidden: int, depth_mean: float, depth_std: float,
                 smoothness: float):
        super().__init__()
        self.grid, self.smoothness = tuple(grid), smoothness
        self.depth_mean, self.depth_std = depth_mean, depth_std
        self.register_buffer("faces", grid_faces(*self.grid), persistent=False)
        self.encoder = nn.ModuleList([_block(5, 32, 1), _block(32, 64, 2), _block(64, 64, 2)])
        feature_size = 32 + 64 + 64
        self.stages = nn.ModuleList([_Stage(feature_size + 1 + (hidden if s else 0), hidden) for s in range(stages)])
        self.semantic_head = nn.Linear(hidden, num_classes)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict:
        rgb, sparse = inputs["rgb"], inputs["sparse"]
        batch, _, height, width = rgb.shape
        measured = (sparse > 0).float()
        x = torch.cat([rgb, measured * (sparse - self.depth_mean) / self.depth_std, measured], 1)
        maps = []
        for block in self.encoder:
            x = block(x)
            maps.append(x)
        with torch.no_grad():
            initial = fit_grid_depth(sparse, self.grid, self.smoothness, self.depth_mean)
        positions = self._sample_positions(batch, rgb.device)
        features = vert_align(maps, positions, align_corners=False)  # (B, V, C)
        edges = self._edges(batch, rgb.device)
        depth, hidden = initial, None
        for stage in self.stages:
            standardised = ((depth - self.depth_mean) / self.depth_std).unsqueeze(-1)
            stage_input = torch.cat([features, standardised] + ([hidden] if hidden is not None else []), -1)
            offset, hidden = stage(stage_input, edges)
            depth = depth + self.depth_std * offset.squeeze(-1)
        cameras = cameras_for(inputs["intrinsics"], (height, width))
        meshes = self._meshes(depth, inputs["intrinsics"], (height, width))
        start = self._meshes(initial, inputs["intrinsics"], (height, width))
        logits = self.semantic_head(hidden) if hidden is not None else None
        rendered = render(meshes, cameras, (height, width), depth, logits)
        return {"meshes": meshes, "initial_meshes": start, "vertex_logits": logits, **rendered,
                "initial_depth": render(start, cameras, (height, width), initial)["depth"]}

    def _sample_positions(self, batch: int, device) -> torch.Tensor:
        """Each vertex's image position as vert_align reads it: x, y in [-1, 1] across the image."""
        rows, cols = self.grid
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, rows, device=device), torch.linspace(-1, 1, cols, device=device), indexing="ij")
        return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.zeros(rows * cols, device=device)], -1).expand(batch, -1, -1)

    def _edges(self, batch: int, device) -> torch.Tensor:
        single = Meshes(verts=[torch.zeros(self.grid[0] * self.grid[1], 3, device=device)], faces=[self.faces]).edges_packed()
        count = self.grid[0] * self.grid[1]
        return torch.cat([single + b * count for b in range(batch)])

    def _meshes(self, depth: torch.Tensor, intrinsics: torch.Tensor, size: tuple[int, int]) -> Meshes:
        rows, cols = self.grid
        height, width = size
        ys, xs = torch.meshgrid(torch.linspace(0, height, rows, device=depth.device), torch.linspace(0, width, cols, device=depth.device),
                                indexing="ij")
        pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1).expand(len(depth), -1, -1)
        verts = unproject(intrinsics, pixels, depth)
        return Meshes(verts=list(verts), faces=[self.faces] * len(depth))


class _Stage(nn.Module):
    def __init__(self, in_features: int, hidden: int):
        super().__init__()
        self.first, self.second = GraphConv(in_features, hidden), GraphConv(hidden, hidden)
        self.offset = nn.Linear(hidden, 1)
        nn.init.zeros_(self.offset.weight)  # a new stage starts by keeping the mesh it is given
        nn.init.zeros_(self.offset.bias)

    def forward(self, features: torch.Tensor, edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, count, channels = features.shape
        packed = F.relu(self.first(features.reshape(-1, channels), edges))
        packed = F.relu(self.second(packed, edges))
        hidden = packed.view(batch, count, -1)
        return self.offset(hidden), hidden


def _block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, 1, 1), nn.ReLU(inplace=True))


def render(meshes: Meshes, cameras: PerspectiveCameras, size: tuple[int, int], vertex_depth: torch.Tensor,
           vertex_logits: torch.Tensor | None = None) -> dict:
    """{"depth": (B,1,H,W) metres, 0 where no face covers the pixel, "covered": (B,1,H,W) bool,
    "semantic": (B,C,H,W) logits interpolated from the vertices, when given}.

    MeshRasterizer finds each pixel's face and its screen-space barycentric coordinates. Vertices
    move only along their rays, so those do not depend on the depths, and the depth and logits are
    interpolated from them here, perspective-correctly (1/z is linear in screen space), with the
    gradient flowing to the vertex depths directly: PyTorch3D's CPU rasterizer backward costs
    seconds per batch, this costs milliseconds. It runs in fp32 under bf16 and fp16 autocast too:
    the rasterizer takes float32 only, and depths in metres need more than 8 or 11 bits.
    """
    with torch.autocast(vertex_depth.device.type, enabled=False):
        return _render(meshes, cameras, size, vertex_depth, vertex_logits)


def _render(meshes: Meshes, cameras: PerspectiveCameras, size: tuple[int, int], vertex_depth: torch.Tensor,
            vertex_logits: torch.Tensor | None) -> dict:
    if meshes.isempty() or any(len(f) == 0 for f in meshes.faces_list()):
        raise ValueError("a mesh without faces cannot be rendered; the grid needs at least 2x2 vertices")
    # A hair of blur: a pixel centre exactly on an edge shared by two faces would otherwise hit neither.
    settings = RasterizationSettings(image_size=size, blur_radius=1e-7, faces_per_pixel=1, bin_size=0, perspective_correct=False)
    with torch.no_grad():
        fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    face = fragments.pix_to_face[..., 0]
    covered = face >= 0
    corners = meshes.faces_packed()[face.clamp(min=0)]  # (B, H, W, 3) packed vertex indices
    inverse = fragments.bary_coords[..., 0, :] / vertex_depth.reshape(-1)[corners].clamp(min=1e-6)
    total = inverse.sum(-1)
    depth = torch.where(covered, 1.0 / total.clamp(min=1e-12), torch.zeros_like(total))
    out = {"depth": depth.unsqueeze(1), "covered": covered.unsqueeze(1)}
    if vertex_logits is not None:
        weights = inverse / total.clamp(min=1e-12).unsqueeze(-1)
        logits = vertex_logits.float().reshape(-1, vertex_logits.shape[-1])[corners]  # (B, H, W, 3, C)
        out["semantic"] = (weights.unsqueeze(-1) * logits).sum(-2).permute(0, 3, 1, 2)
    return out
