"""``python -m ds01_prometheus.dashboards [DIR]``: regenerate the dashboards' JSON."""

from __future__ import annotations

import sys
from pathlib import Path

from ds01_prometheus.dashboards import SHIPPED, write

if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED):
        print(f"wrote {path}")
