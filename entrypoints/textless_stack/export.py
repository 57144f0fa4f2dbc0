"""`export`: a legacy checkpoint (and its k-means) written for the modern stack, with the parity certificate.

The export is assembled in a hidden directory beside OUTDIR and renamed into place only when it is whole,
parity.json and PARITY.md included: an interrupted export leaves no OUTDIR that looks finished.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import hf_export, parity, registry, store
from .errors import UserError

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).parent / "samples" / "speech.flac"


@dataclass
class ExportSpec:
    model: str                              # registry name or checkpoint path
    output: Path
    format: str = "hf"                      # hf | safetensors
    units: str | None = None                # k-means registry name or file, exported beside the model
    layer: int | None = None                # the units' layer (default: the registry's)
    audio: list[Path] = field(default_factory=list)  # parity audio (default: the bundled sample speech)
    tolerance: float = parity.DEFAULT_TOLERANCE
    user_dir: str | None = None

    @classmethod
    def from_namespace(cls, args) -> "ExportSpec":
        return cls(model=args.model, output=args.output, format=args.format, units=args.units, layer=args.layer,
                   audio=list(args.audio or []), tolerance=args.tolerance, user_dir=args.user_dir)


def export(spec: ExportSpec) -> dict:
    """Write the export and its certificate; returns the parity report (its status says pass or fail)."""
    from .kmeans import read_centroids
    from .loader import load_model

    out = Path(spec.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: already exists and is not empty: export into a new directory")
    entry = registry.MODELS.get(spec.model)
    if entry is not None and entry.kind != "dense":
        raise UserError(f"{spec.model}: a {entry.kind} model; export writes dense encoders (HuBERT, mHuBERT, "
                        "wav2vec 2.0) and their k-means. Vocoders and unit LMs are not exported: fairseq's "
                        "CodeHiFiGAN and Tacotron2 have no transformers class to load them into")
    layer = spec.layer if spec.layer is not None else (entry.layer if entry else None)
    if spec.units and layer is None:
        raise UserError(f"--units {spec.units}: say which --layer of {spec.model} its units were trained on")

    loaded = load_model(store.resolve(spec.model), user_dir=spec.user_dir)
    centroids = None
    if spec.units:
        km = store.resolve(spec.units)
        centroids = read_centroids(km.path)
        dim = loaded.cfg.model.get("encoder_embed_dim")
        if centroids.shape[1] != dim:
            raise UserError(f"k-means {spec.units} has {centroids.shape[1]}-dimensional centroids, but {spec.model} "
                            f"gives {dim}-dimensional features: they do not belong together")
        layers = len(loaded.model.encoder.layers)
        if not 1 <= layer <= layers:
            raise UserError(f"--layer {layer}: {spec.model} has transformer layers 1..{layers}")

    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        writer = hf_export.write_hf if spec.format == "hf" else hf_export.write_safetensors
        arch = writer(loaded, work)
        if centroids is not None:
            hf_export.write_kmeans(centroids, work, {"model": spec.model, "sha256": loaded.sha256}, layer,
                                   {"file": str(spec.units), "sha256": km.sha256})
        log.info("exported %s (%s) as %s; checking parity", spec.model, arch.hf_class, spec.format)
        report = parity.run(parity.Spec(model=spec.model, target=f"{spec.format}:{work}",
                                        audio=spec.audio or [SAMPLE], units=spec.units, layer=layer,
                                        tolerance=spec.tolerance), reference=loaded)
        report["exported"]["directory"] = str(out)
        parity.write(report, work)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report
