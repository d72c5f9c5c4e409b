"""How far ffn-edge's OpenCV resize (INTER_LINEAR, no antialiasing) is from the PIL bilinear resize
the FFN authors' / TSM's test pipeline uses (``GroupScale`` = torchvision ``Resize`` on PIL images,
antialiased when shrinking), on the network input and on the logits of an imported TSM-FFN.

Frames: the project's synthetic clips (``render_clip``) upscaled to 640x480 plus 1/f-noise texture,
then both pipelines: shorter side -> 256, centre crop 224, ImageNet mean/std. Logits: an imported
TSM-FFN with random weights in the authors' format (a trained network's sensitivity differs; this
bounds the input change, it does not predict an accuracy change).

  python benchmarks/resize_pil_vs_cv2.py [--clips 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import import_sources as S  # noqa: E402

from ffn_edge.data.synthetic import render_clip  # noqa: E402
from ffn_edge.data.transforms import ValTransform  # noqa: E402
from ffn_edge.importers import import_checkpoint  # noqa: E402

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def pil_pipeline(bgr: np.ndarray, short: int = 256, crop: int = 224) -> np.ndarray:
    img = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    w, h = img.size
    size = (int(short * w / h), short) if h <= w else (short, int(short * h / w))  # torchvision Resize(int)
    img = img.resize(size, Image.BILINEAR)
    left, top = int(round((size[0] - crop) / 2.0)), int(round((size[1] - crop) / 2.0))
    x = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1).astype(np.float32)


def frames(clips: int, n: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    out = []
    for c in range(clips):
        clip = render_clip(c % 5, rng, n, 128)  # (T, H, W, 3) uint8 or float
        clip = np.asarray(clip)
        if clip.dtype != np.uint8:
            clip = np.clip(clip * 255 if clip.max() <= 1.0 else clip, 0, 255).astype(np.uint8)
        f = np.fft.fft2(rng.standard_normal((480, 640)))
        fy, fx = np.meshgrid(np.fft.fftfreq(480), np.fft.fftfreq(640), indexing="ij")
        tex = np.real(np.fft.ifft2(f / np.maximum(np.hypot(fx, fy), 1e-3)))
        tex = (tex - tex.min()) / (np.ptp(tex) + 1e-9) * 60 - 30
        out.append([np.clip(cv2.resize(fr, (640, 480), interpolation=cv2.INTER_CUBIC) + tex[..., None], 0, 255)
                    .astype(np.uint8) for fr in clip])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    a = ap.parse_args()
    ours_t = ValTransform(224, 256, tuple(MEAN), tuple(STD))
    clips = frames(a.clips, a.frames)
    xo = np.stack([ours_t(c) for c in clips])
    xp = np.stack([np.stack([pil_pipeline(f) for f in c]) for c in clips])
    d = np.abs(xo - xp)
    print(f"input (normalised units): max |d| {d.max():.3f}, mean |d| {d.mean():.4f}, "
          f"mean |x| {np.abs(xp).mean():.3f}  ({a.clips} clips x {a.frames} frames, 640x480 -> 256 -> 224)")
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(S.authors_tsm_ffn(64, 174, seed=3), f"{tmp}/a.pth")
        Path(tmp, "c.txt").write_text("\n".join(f"c{i}" for i in range(174)))
        model = import_checkpoint("authors-2d", "tsm_resnet50", f"{tmp}/a.pth", f"{tmp}/c.txt").model
    with torch.no_grad():
        lo, lp = model(torch.from_numpy(xo)), model(torch.from_numpy(xp))
    dl = (lo - lp).abs()
    print(f"logits (imported TSM-FFN, random weights, {a.frames} frames): max |d| {float(dl.max()):.3f}, "
          f"mean |d| {float(dl.mean()):.4f}, mean |logit| {float(lp.abs().mean()):.3f}, "
          f"top-1 agree {int((lo.argmax(1) == lp.argmax(1)).sum())}/{a.clips}")


if __name__ == "__main__":
    main()
