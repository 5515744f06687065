"""DVC plots that open offline.

``dvc plots show`` writes a page that loads vega, vega-lite and vega-embed from a CDN. This
gives DVC an HTML template that carries them inline instead, taken from the copies Snakemake
ships for its own offline reports (``snakemake.assets``, pinned there by version and sha256), and
draws the plots dvc.yaml defines plus every run's DVCLive training curves
(``results/models/<run>/dvclive``)::

    python -m facerepro.dvc_plots [-o results/dvc_plots]      # or: make plots
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# dvc_render's vega renderer wants these three (it links vega 5, vega-lite 5, vega-embed 6).
VEGA_ASSETS = ("vega/vega.js", "vega-lite/vega-lite.js", "vega-embed/vega-embed.js")
CURVES = "results/models/*/dvclive/plots/metrics"


def html_template() -> str:
    """A DVC HTML template with the vega libraries inline and DVC's ``{plot_divs}`` slot.

    Without a ``{scripts}`` slot DVC adds no script tags of its own, so nothing is fetched.
    """
    from snakemake.assets import Assets  # here: only this command needs Snakemake's assets

    scripts = []
    for asset in VEGA_ASSETS:
        path = Assets.base_path() / asset
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: the snakemake wheel ships it for offline reports; reinstall "
                f"the pinned snakemake (`make` does, from requirements.lock)")
        # an inline script ends at the first "</script": escaped, should a future build hold one
        source = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
        scripts.append(f"<!-- {asset} {Assets.spec[asset].version} -->\n<script>\n{source}\n"
                       f"</script>")
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>DVC plots</title>\n"
            + "\n".join(scripts)
            + "\n<style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n{plot_divs}\n"
            "</body>\n</html>\n")


def targets(root: Path) -> list[str]:
    """The plots dvc.yaml defines at its top level, then every run's DVCLive curves.

    A defined directory is listed file by file: named as a target itself, DVC would draw its
    files twice (once as the definition, once as the target). A defined file or directory not
    made yet (no report so far) is left out rather than drawn as an empty plot.
    """
    spec = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
    found = []
    for entry in spec.get("plots", []):
        if isinstance(entry, dict):                 # a named plot over files of its own
            found.append(next(iter(entry)))
            continue
        path = root / entry
        if path.is_dir():                           # not Snakemake's .snakemake_timestamp
            found += sorted(p.relative_to(root).as_posix() for p in path.rglob("*")
                            if p.is_file() and not p.name.startswith("."))
        elif path.exists():
            found.append(entry)
    return found + sorted(p.relative_to(root).as_posix() for p in root.glob(CURVES))


def show(out: str | Path = "results/dvc_plots", root: str | Path = ".") -> Path:
    """Write the plots page to ``out/index.html`` and return its path."""
    root = Path(root)
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template.html"
        template.write_text(html_template(), encoding="utf-8")
        # x = the training step for DVCLive's curves (images ignore it)
        cmd = [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template),
               "-o", str(out), "-x", "step", *targets(root)]
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        subprocess.run(cmd, cwd=root, env=env, check=True)
    page = root / out / "index.html"
    body = page.read_text(encoding="utf-8").split("<body>", 1)[1]
    if re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", body):
        raise RuntimeError(f"{page} loads something from the network: DVC's HTML template "
                           f"handling changed; check facerepro.dvc_plots against dvc_render")
    return page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default="results/dvc_plots", help="output directory")
    args = parser.parse_args(argv)
    print(show(args.out))


if __name__ == "__main__":
    main(sys.argv[1:])
