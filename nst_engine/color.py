"""Colour preservation (Gatys et al. 2017, "Controlling perceptual factors in neural style transfer").

- ``luminance``: stylise only the luminance; the output keeps the content's chroma exactly.
- ``histogram``: recolour the style image so its colour mean and covariance match the content's, then stylise.
Tensors are N×3×H×W RGB in 0..1.
"""

from __future__ import annotations

import torch

# ITU-R BT.601 full-range RGB ↔ YCbCr (the JPEG convention), chroma centred on 0.
_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                              [-0.168736, -0.331264, 0.5],
                              [0.5, -0.418688, -0.081312]])


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YCBCR.to(image), image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YCBCR).to(image), image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Luminance replicated to three channels, so VGG sees a grey picture."""
    y = rgb_to_ycbcr(image)[:, :1]
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style image whose luminance mean and spread match the content's (Gatys 2017, §5.1)."""
    s, c = luminance(style), luminance(content)
    matched = (s - s.mean()) * (c.std() / s.std().clamp_min(1e-6)) + c.mean()
    return matched.clamp(0, 1)


def combine_luminance(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Stylised luminance with the content's chroma."""
    y = rgb_to_ycbcr(stylised)[:, :1]
    chroma = rgb_to_ycbcr(content)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0, 1)


def match_histogram(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Linear colour transfer: style pixels x → A(x − μs) + μc with A Σs A^T = Σc (Cholesky variant)."""
    def stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mean
        cov = centred @ centred.T / pixels.shape[1] + torch.eye(3, dtype=torch.float64, device=image.device) * 1e-5
        return mean, cov

    mean_s, cov_s = stats(style[0])
    mean_c, cov_c = stats(content[0])
    transform = torch.linalg.cholesky(cov_c) @ torch.linalg.inv(torch.linalg.cholesky(cov_s))
    pixels = style[0].reshape(3, -1).double()
    matched = transform @ (pixels - mean_s) + mean_c
    return matched.reshape(style.shape).to(style.dtype).clamp(0, 1)
