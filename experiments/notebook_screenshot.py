r"""Runs the quickstart notebook and saves the plots it displays as one PNG.

  python -m experiments.notebook_screenshot --output=results/notebook_quickstart.png \
      [--executed=/tmp/quickstart_executed.ipynb]

Executes `experiments/notebooks/quickstart.ipynb` with nbclient at its full size (what a Colab
user runs: 3000 steps on the embedded addresses, ~5 minutes on a 2-core CPU) unless
`--executed` names an already executed copy, then stacks the images its cells display, under
the text its last cells print, into one PNG: a headless stand-in for a screenshot of the
notebook's output area (no browser here).
"""

import base64
import io
import os
import time

from absl import app, flags

_NOTEBOOK = flags.DEFINE_string(
  "notebook", "experiments/notebooks/quickstart.ipynb", "The notebook to run."
)
_EXECUTED = flags.DEFINE_string("executed", "", "An executed copy to read instead of running.")
_OUTPUT = flags.DEFINE_string("output", "results/notebook_quickstart.png", "The PNG to write.")


def execute(path: str):
  import nbclient
  import nbformat

  nb = nbformat.read(path, as_version=4)
  t0 = time.time()
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(path))))
  client = nbclient.NotebookClient(
    nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": root}}
  )
  client.execute()
  print(f"executed {path} in {time.time() - t0:.0f} s")
  return nb


def outputs(nb) -> tuple[list[bytes], list[str]]:
  """(PNG images displayed, stream/text lines printed), in cell order."""
  images, texts = [], []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      data = out.get("data", {})
      if "image/png" in data:
        images.append(base64.b64decode(data["image/png"]))
      elif out.get("output_type") == "stream" and out.get("name") == "stdout":
        texts.append(out["text"])
  return images, texts


def compose(images: list[bytes], caption: str, path: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.image as mpimg
  import matplotlib.pyplot as plt

  arrays = [mpimg.imread(io.BytesIO(b), format="png") for b in images]
  heights = [a.shape[0] / a.shape[1] for a in arrays]
  caption_h = 0.02 * (caption.count("\n") + 2)
  fig = plt.figure(figsize=(10, 10 * (sum(heights) + caption_h)))
  grid = fig.add_gridspec(len(arrays) + 1, 1, height_ratios=[caption_h] + heights, hspace=0.02)
  ax = fig.add_subplot(grid[0])
  ax.axis("off")
  ax.text(0, 1, caption, va="top", ha="left", family="monospace", fontsize=8)
  for i, a in enumerate(arrays, 1):
    ax = fig.add_subplot(grid[i])
    ax.imshow(a)
    ax.axis("off")
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)


def main(argv):
  del argv
  import nbformat

  nb = nbformat.read(_EXECUTED.value, 4) if _EXECUTED.value else execute(_NOTEBOOK.value)
  images, texts = outputs(nb)
  if not images:
    raise SystemExit("the notebook displayed no images")
  caption = "quickstart.ipynb, section 5 (quality report): what its cells printed\n" + "".join(
    t for t in texts[-2:]
  )
  compose(images, caption.rstrip(), _OUTPUT.value)
  print(f"{len(images)} images -> {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
