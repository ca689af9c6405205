"""The docs site's generated page stays what the code says (``mkdocs build --strict`` runs in
``.ci/run``)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_components_page_is_generated_from_the_current_code():
    # a fresh process: the toy components the tests register must not appear on the page
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "component_docs.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_every_registered_component_has_a_section():
    import privbench

    page = (ROOT / "docs" / "components.md").read_text()
    for name in privbench.list_encoders() + privbench.list_tasks() + privbench.list_attacks():
        if name.startswith("toy-") or name in ("vignette",):
            continue  # registered by the tests themselves
        assert f"### `{name}`" in page, name
