"""The quickstart notebook runs top to bottom (nbclient, tiny configuration) and shows plots."""

import os

import nbformat
import pytest

NOTEBOOK = os.path.join(
  os.path.dirname(__file__), "..", "experiments", "notebooks", "quickstart.ipynb"
)


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_the_report(tmp_path, monkeypatch):
  from nbclient import NotebookClient

  monkeypatch.setenv("ALALA_NOTEBOOK_TINY", "1")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(
    nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  ).execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) >= 2  # the report's figures are displayed
  text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
  assert "distinct condition(s)" in text and "index.html" in text
