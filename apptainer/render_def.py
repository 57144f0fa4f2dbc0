"""Render the Apptainer definition for one image from its manifest: labels carry the pins,
commits, base and stand-ins the image was really built from (not what was hoped for).

    python3 apptainer/render_def.py MANIFEST.json IMAGE_ARCHIVE.tar > textless-stack.def
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("textless-stack.def.in")


def labels(manifest: dict) -> dict[str, str]:
    pins, variant = manifest["pins"], manifest["variant"]
    out = {
        "org.textless-stack.variant": variant["name"],
        "org.textless-stack.torch": variant["torch"],
        "org.textless-stack.cuda": variant["cuda"],
        "org.textless-stack.min-driver": variant["min_driver"],
        "org.textless-stack.python": pins["python"]["version"],
        "org.textless-stack.revision": manifest.get("revision", "unknown"),
        "org.textless-stack.base": manifest["base_image"]["ref"],
        "org.textless-stack.base.pinned": manifest["base_image"]["pinned"],
        "org.textless-stack.standins": ",".join(manifest["standins_used"]) or "none",
        "org.textless-stack.sbom": "/opt/textless-stack/sbom.cdx.json",
    }
    for project, record in manifest["sources"].items():
        out[f"org.textless-stack.{project}.pinned-commit"] = pins["sources"][project]["commit"]
        out[f"org.textless-stack.{project}.source"] = record.get("kind", "unavailable") + (
            f" {record['package']}" if record.get("package") else "")
    for name in ("omegaconf", "hydra-core", "numpy", "librosa", "numba"):
        out[f"org.textless-stack.{name}"] = pins["runtime"][name]
    return out


def render(manifest: dict, archive: str) -> str:
    variant = manifest["variant"]
    text = TEMPLATE.read_text()
    block = "\n".join(f"    {k} {v}" for k, v in labels(manifest).items())
    for key, value in {"@ARCHIVE@": archive, "@LABELS@": block, "@VARIANT@": variant["name"],
                       "@DESCRIPTION@": variant.get("description", ""), "@MIN_DRIVER@": variant["min_driver"]}.items():
        text = text.replace(key, value)
    return text


if __name__ == "__main__":
    sys.stdout.write(render(json.loads(Path(sys.argv[1]).read_text()), sys.argv[2]))
