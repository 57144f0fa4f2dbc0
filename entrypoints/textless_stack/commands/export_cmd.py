"""Export a dense model (HuBERT, mHuBERT, mHuBERT-25Hz, wav2vec 2.0), and optionally its k-means, for use outside
this image, with a parity certificate.

--format hf           config.json + model.safetensors + preprocessor_config.json: transformers' HubertModel /
                      Wav2Vec2Model.from_pretrained load it with nothing missing or unused; no fairseq needed
--format safetensors  fairseq's weight names in model.safetensors and its config as plain JSON: no pickle,
                      fairseq or omegaconf needed to read it
--units KMEANS        also kmeans.npy, kmeans.safetensors and kmeans.json (dense model, layer, k, dim and the
                      assignment rule: squared Euclidean distance, nearest centroid)

parity.json and PARITY.md go beside the files: for every layer and audio file (--audio, else the bundled
sample speech), max |diff|, mean cosine and unit agreement of the export against fairseq's reference
forward, one file at a time and batched the way the target library batches.

Vocoders and unit LMs are not exported: fairseq's CodeHiFiGAN and Tacotron2 have no transformers class.

Exit status: 0 exported and within tolerance; 1 refused or failed parity (the files and PARITY.md stay, saying so).
"""

from __future__ import annotations

from pathlib import Path

from ..export_contract import DEFAULT_TOLERANCE, FORMATS

NAME = "export"
HELP = "export a dense model (+ k-means) to Hugging Face / safetensors, with a parity certificate"


def add_arguments(p) -> None:
    p.add_argument("model", metavar="CKPT", help="registry name or fairseq checkpoint")
    p.add_argument("output", metavar="OUTDIR", type=Path, help="a new (or empty) directory")
    p.add_argument("--format", choices=FORMATS, default="hf")
    p.add_argument("--units", metavar="KMEANS", help="k-means registry name or file to export beside it")
    p.add_argument("--layer", type=int, help="the layer the k-means was trained on (default: the registry's)")
    p.add_argument("--audio", nargs="+", type=Path, help="audio files for the certificate (default: sample speech)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="largest max |diff| per file and layer that passes (default %(default)g)")
    p.add_argument("--user-dir", metavar="DIR", help="the fairseq plugin (--user-dir) a checkpoint's model needs")


def run(args) -> int:
    from .. import parity  # torch: only when the command runs
    from ..export import ExportSpec, export

    report = export(ExportSpec.from_namespace(args))
    print(parity.verdict(report, f"exported to {args.output}"))
    return 0 if report["status"] == "pass" else 1
