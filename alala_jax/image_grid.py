"""A PNG grid of flattened images (samples, reconstructions) for image VAEs.

matplotlib is imported inside the function and drawn through its object API (`Figure` +
`FigureCanvasAgg`), so importing this module neither needs matplotlib nor changes the backend
of a running notebook.
"""

from __future__ import annotations

import numpy as np


def image_mosaic(
  images, shape: tuple[int, int], ncols: int = 10, pad: int = 1, pad_value: float = 0.5
) -> np.ndarray:
  """Tiles flattened images into one [rows * (H + pad) - pad, ncols * (W + pad) - pad] array.

  Args:
    images: [n, P] with P = H * W, row-major; values in [0, 1].
    shape: (H, W).
    ncols: images per row (the last row is filled with pad_value).
    pad: pixels between images.
    pad_value: grey level of the padding.

  Returns:
    float32 mosaic, n images in reading order.

  Raises:
    ValueError: images not [n, H * W] with n >= 1, or ncols < 1.
  """
  images = np.asarray(images, np.float32)
  h, w = (int(s) for s in shape)
  if images.ndim != 2 or images.shape[0] < 1 or images.shape[1] != h * w:
    raise ValueError(
      f"images must be [n >= 1, {h} * {w} = {h * w}] for shape {tuple(shape)}, got {images.shape}"
    )
  if ncols < 1:
    raise ValueError(f"ncols must be >= 1, got {ncols}")
  n = images.shape[0]
  ncols = min(ncols, n)
  nrows = -(-n // ncols)
  out = np.full((nrows * (h + pad) - pad, ncols * (w + pad) - pad), pad_value, np.float32)
  for i, img in enumerate(images.reshape(n, h, w)):
    r, c = divmod(i, ncols)
    out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
  return out


def save_image_grid(
  images, shape: tuple[int, int], path: str, ncols: int = 10, *, scale: int = 4, title: str = ""
) -> str:
  """Writes a grey-scale PNG grid of flattened images (0 black, 1 white).

  Args:
    images: [n, P] with P = H * W, row-major, values in [0, 1] (binary samples or
      probabilities).
    shape: (H, W).
    path: the PNG file to write.
    ncols: images per row.
    scale: screen pixels per image pixel.
    title: optional title above the grid.

  Returns:
    path.

  Raises:
    ValueError: images not [n, H * W] (image_mosaic).
  """
  mosaic = image_mosaic(images, shape, ncols)
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  dpi = 100
  top = 0.3 if title else 0.0  # inches for the title
  width, height = mosaic.shape[1] * scale / dpi, mosaic.shape[0] * scale / dpi
  fig = Figure(figsize=(width, height + top), dpi=dpi)
  FigureCanvasAgg(fig)
  ax = fig.add_axes((0.0, 0.0, 1.0, height / (height + top)))
  ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  ax.set_axis_off()
  if title:
    fig.suptitle(title, fontsize=8, y=1.0 - 0.5 * top / (height + top), va="center")
  fig.savefig(path, dpi=dpi)
  return path
