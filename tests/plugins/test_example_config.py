"""examples/ds01.yaml's commented ``plugins:`` block: uncommented, each plugin section it shows
loads through that plugin's own configuration class, so the example never teaches a key that
``ds01 config check`` would refuse."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ds01_core.api import load_runtime
from tests.helpers.config import write_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ds01.yaml"
NOT_SECTIONS = {"disabled", "order", "required"}


def uncommented_plugins() -> dict:
    text = EXAMPLE.read_text()
    block = text[text.index("# plugins:") :]
    lines = []
    for line in block.splitlines():
        line = line[2:] if line.startswith("# ") else line.removeprefix("#")
        lines.append(re.sub(r"\s+#.*$", "", line))
    return yaml.safe_load("\n".join(lines))["plugins"]


def test_every_plugin_section_of_the_example_loads(tmp_path: Path) -> None:
    plugins = uncommented_plugins()
    sections = {k: v for k, v in plugins.items() if k not in NOT_SECTIONS}
    assert {"web", "slurm", "projects"} <= set(sections)
    config = write_config(tmp_path, {"plugins": sections})
    runtime = load_runtime(str(config))
    for name, values in sections.items():
        loaded = runtime.plugin_config(name)
        assert loaded is not None and not isinstance(loaded, dict), name
        for key in values or {}:
            assert hasattr(loaded, key), f"plugins.{name}.{key} is not a key of {type(loaded)}"
