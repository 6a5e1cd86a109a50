"""Render every protocol text Polyglot reads at run time from the installed reference packages.

Each `render_*.py` module beside this file defines `render(out_dir: pathlib.Path) -> list[str]`,
writes its files under `out_dir` and returns their names. Files are written to a temporary name and
renamed, so a reader never sees half a file. Run by scripts/setup.sh (and the worker image build)
with .tools/protocol-venv's Python; the output folder, `generated/`, is never committed.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "generated")
    out.mkdir(parents=True, exist_ok=True)
    here = pathlib.Path(__file__).parent
    for path in sorted(here.glob("render_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        names = mod.render(out)
        print(f"[protocols] {path.stem}: {', '.join(names)}", file=sys.stderr)


if __name__ == "__main__":
    main()
