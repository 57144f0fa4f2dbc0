"""The parity certificate: an exported model against the fairseq reference, layer by layer, file by file.

For every transformer layer and every audio file: max |diff|, mean cosine, and (with a k-means) unit
agreement, for the exported model against fairseq's own forward of the original checkpoint, one file at a
time, unpadded, fp32 on CPU (textlesslib's HubertFeatureReader). Then the same with all files in one batch,
padded the way the target library batches (HF: its feature extractor's padding, an attention mask only where
its preprocessor config asks for one; safetensors: textless-stack's padding-exact batches), so the batching
caveat is a number. The verdict rests on the per-file figures; the batched ones are reported.

Written as parity.json (schema PARITY_SCHEMA, below) and PARITY.md.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import __version__, audio, hf_export
from .errors import UserError
from .export_contract import DEFAULT_TOLERANCE
from .integrity import sha256_file

PARITY_SCHEMA = "textless-stack/parity/1"
MIN_UNIT_AGREEMENT = 0.99       # a frame within rounding of two centroids may flip; more than 1% may not
CPU = torch.device("cpu")


class ParityError(UserError):
    """An export that cannot be compared (missing, unreadable, changed); the message names the file."""


# --- the two sides ----------------------------------------------------------------------------


@torch.inference_mode()
def reference_layers(model, wav: torch.Tensor, normalize: bool) -> list[torch.Tensor]:
    """fairseq's forward of one unpadded file: [frames, dim] after each transformer layer (1..L), as
    `extract_features(output_layer=l)` returns them, all from one pass."""
    from .testing.reference import extract

    if normalize:
        wav = F.layer_norm(wav, wav.shape)
    outputs: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda _m, _i, out: outputs.append(out[0].transpose(0, 1)[0].float()))
             for layer in model.encoder.layers]
    try:
        top = extract(model, wav[None], None)[0]
    finally:
        for h in hooks:
            h.remove()
    # fairseq 0.12 pads the sequence to a multiple (required_seq_len_multiple) inside the encoder and masks
    # the pad; the hooks see it, the returned features do not.
    outputs = [o[: len(top)] for o in outputs]
    if model.encoder.layer_norm_first:  # the top layer, as a full forward returns it: after the final norm
        outputs[-1] = top.float()
    return outputs


class HfTarget:
    """An `export --format hf` directory, read by transformers alone."""

    def __init__(self, directory: Path):
        import transformers

        self.directory = directory
        config = _read_json(directory / "config.json")
        names = config.get("architectures") or []
        if len(names) != 1 or names[0] not in ("HubertModel", "Wav2Vec2Model"):
            raise ParityError(f"{directory / 'config.json'}: architectures {names}: not a HubertModel or "
                              "Wav2Vec2Model export")
        _read_json(directory / "preprocessor_config.json")
        cls = getattr(transformers, names[0])
        self.model, info = cls.from_pretrained(directory, output_loading_info=True)
        self.model.eval()
        problems = {k: v for k, v in info.items() if v and k != "error_msgs"}
        if problems or info.get("error_msgs"):
            raise ParityError(f"{directory}: {names[0]}.from_pretrained did not load it strictly: {problems}")
        self.extractor = transformers.AutoFeatureExtractor.from_pretrained(directory)
        self.loader = f"transformers {transformers.__version__} {names[0]}.from_pretrained"
        self.batching = ("one padded batch through its feature extractor (padding_value 0.0, "
                         f"return_attention_mask={self.extractor.return_attention_mask})")

    @property
    def normalizes(self) -> bool:
        return bool(self.extractor.do_normalize)

    @torch.inference_mode()
    def per_file(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """The model on fairseq's own input (its layer_norm of the waveform where the task normalises), so that
        the verdict is about the weights; `per_file_extractor` measures HF's normalisation on top."""
        x = F.layer_norm(wav, wav.shape) if self.normalizes else wav
        hidden = self.model(x[None], output_hidden_states=True).hidden_states
        return [h[0].float() for h in hidden[1:]]

    @torch.inference_mode()
    def per_file_extractor(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """Through HF's feature extractor, as a user of the export would feed it (its do_normalize uses eps 1e-7
        where fairseq's layer_norm uses 1e-5)."""
        inputs = self.extractor(wav.numpy(), sampling_rate=16000, return_tensors="pt")
        hidden = self.model(**inputs, output_hidden_states=True).hidden_states
        return [h[0].float() for h in hidden[1:]]

    @torch.inference_mode()
    def batched(self, wavs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        inputs = self.extractor([w.numpy() for w in wavs], sampling_rate=16000, return_tensors="pt", padding=True)
        hidden = self.model(**inputs, output_hidden_states=True).hidden_states
        frames = [int(self.model._get_feat_extract_output_lengths(w.numel())) for w in wavs]
        return [[h[i, :n].float() for h in hidden[1:]] for i, n in enumerate(frames)]


class SafetensorsTarget:
    """An `export --format safetensors` directory, rebuilt into fairseq's classes by the strict loader."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.loaded = hf_export.load_safetensors_export(directory)
        self.normalize = bool(self.loaded.cfg.task.get("normalize", False))
        self.loader = "textless-stack load_safetensors_export (fairseq classes, strict)"
        self.batching = "one batch through textless-stack's padding-exact encoder (features --batch-seconds)"

    def per_file(self, wav: torch.Tensor) -> list[torch.Tensor]:
        return reference_layers(self.loaded.model, wav, self.normalize)

    def batched(self, wavs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        from .encoder import DenseEncoder

        per_layer = []
        for layer in range(1, len(self.loaded.model.encoder.layers) + 1):
            enc = DenseEncoder(self.loaded.model, layer, self.normalize, CPU, "fp32",
                               max_chunk=max(w.numel() for w in wavs))
            per_layer.append(enc.encode([enc.chunks(w)[0] for w in wavs]))
        return [[per_layer[l][i] for l in range(len(per_layer))] for i in range(len(wavs))]


def open_target(spec: str):
    """`hf:DIR` or `safetensors:DIR`."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in hf_export.FORMATS or not rest:
        raise ParityError(f"--against {spec}: expected hf:DIR or safetensors:DIR")
    directory = Path(rest)
    if not directory.is_dir():
        raise ParityError(f"{directory}: no such export directory")
    return HfTarget(directory) if kind == "hf" else SafetensorsTarget(directory)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ParityError(f"{path}: missing from the export") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ParityError(f"{path}: not JSON: {e}") from None


# --- comparing ----------------------------------------------------------------------------------


@dataclass
class Comparison:
    layers: list[dict] = field(default_factory=list)   # {"layer", "max_abs_diff", "mean_cosine"}
    unit_agreement: float | None = None

    @property
    def max_abs_diff(self) -> float:
        return max(l["max_abs_diff"] for l in self.layers)


def compare(reference: list[torch.Tensor], other: list[torch.Tensor], units=None) -> Comparison:
    """units: (reference quantizer, exported quantizer, 1-based layer) or None."""
    result = Comparison()
    for i, (r, o) in enumerate(zip(reference, other), start=1):
        if r.shape != o.shape:
            result.layers.append({"layer": i, "max_abs_diff": float("inf"), "mean_cosine": float("nan"),
                                  "shape": [list(r.shape), list(o.shape)]})
            continue
        result.layers.append({"layer": i, "max_abs_diff": float((r - o).abs().max()) if r.numel() else 0.0,
                              "mean_cosine": float(F.cosine_similarity(r, o, dim=1).mean()) if r.numel() else 1.0})
    if units is not None:
        ref_q, exp_q, layer = units
        r, o = reference[layer - 1], other[layer - 1]
        result.unit_agreement = (float(np.mean(ref_q(r) == exp_q(o))) if r.shape == o.shape and len(r) else
                                 (1.0 if r.shape == o.shape else 0.0))
    return result


@dataclass
class Spec:
    model: str                     # registry name or checkpoint path: the reference
    target: str                    # hf:DIR | safetensors:DIR
    audio: list[Path]
    units: str | None = None       # the reference k-means (registry name or file)
    layer: int | None = None       # the units' layer
    tolerance: float = DEFAULT_TOLERANCE
    user_dir: str | None = None


def run(spec: Spec, expected_files: dict[str, str] | None = None, reference=None) -> dict:
    """The report (parity.json's contents). expected_files: the export's file digests at export time, to say
    whether any changed since. reference: an already loaded fairseq model (export passes its own)."""
    from . import store
    from .kmeans import Quantizer, read_centroids
    from .loader import load_model

    target = open_target(spec.target)
    loaded = reference or load_model(store.resolve(spec.model), user_dir=spec.user_dir)
    normalize = bool(loaded.cfg.task.get("normalize", False))
    units = kmeans_record = None
    if spec.units:
        km_source = store.resolve(spec.units)
        ref_q = Quantizer(read_centroids(km_source.path), CPU)
        exported_km = target.directory / "kmeans.npy"
        if not exported_km.is_file():
            raise ParityError(f"{exported_km}: missing: export the model with --units to compare units")
        exp_q = Quantizer(np.load(exported_km, allow_pickle=False), CPU)
        layer = spec.layer or _units_layer(target.directory)
        units = (ref_q, exp_q, layer)
        kmeans_record = {"reference": str(spec.units), "reference_sha256": km_source.sha256,
                         "exported": "kmeans.npy", "layer": layer, "k": ref_q.size}

    wavs = {}
    for path in spec.audio:
        try:
            wavs[str(path)] = audio.load(Path(path))
        except (OSError, audio.AudioError) as e:
            raise ParityError(f"{path}: {e}") from None
    names = list(wavs)
    batch = [wavs[n] for n in names]
    batch_names = list(names)
    if len(batch) == 1:  # a batch of one pads nothing: pair the file with its own first half
        batch.append(batch[0][: batch[0].numel() // 2])
        batch_names.append(f"{names[0]} [first half]")
    references = {n: reference_layers(loaded.model, w, normalize) for n, w in zip(batch_names, batch)}
    together = target.batched(batch)

    files = []
    for i, name in enumerate(batch_names):
        wav = batch[i]
        per_file = compare(references[name], target.per_file(wav), units) if i < len(names) else None
        batched = compare(references[name], together[i], units)
        extractor = (compare(references[name], target.per_file_extractor(wav), units)
                     if i < len(names) and getattr(target, "normalizes", False) else None)
        files.append({
            "audio": name, "sha256": sha256_file(Path(name)) if i < len(names) else None,
            "seconds": round(wav.numel() / 16000, 3), "frames": int(references[name][0].shape[0]),
            "per_file": None if per_file is None else {"layers": per_file.layers,
                                                       "unit_agreement": per_file.unit_agreement},
            # HF's own normalisation of the waveform (do_normalize models only): reported, not judged
            "per_file_hf_extractor": None if extractor is None else {
                "max_abs_diff": extractor.max_abs_diff, "unit_agreement": extractor.unit_agreement},
            "batched": {"layers": batched.layers, "unit_agreement": batched.unit_agreement},
        })

    per_file_diffs = [l["max_abs_diff"] for f in files if f["per_file"] for l in f["per_file"]["layers"]]
    per_file_units = [f["per_file"]["unit_agreement"] for f in files if f["per_file"]
                      and f["per_file"]["unit_agreement"] is not None]
    batched_diffs = [l["max_abs_diff"] for f in files for l in f["batched"]["layers"]]
    batched_units = [f["batched"]["unit_agreement"] for f in files if f["batched"]["unit_agreement"] is not None]
    digests = {p.name: sha256_file(p) for p in sorted(target.directory.iterdir())
               if p.is_file() and p.name not in ("parity.json", "PARITY.md")}
    changed = sorted(n for n, d in (expected_files or {}).items() if digests.get(n) != d)
    failures = []
    if max(per_file_diffs) > spec.tolerance:
        failures.append(f"per-file max |diff| {max(per_file_diffs):.3g} > tolerance {spec.tolerance:g}")
    if per_file_units and min(per_file_units) < MIN_UNIT_AGREEMENT:
        failures.append(f"per-file unit agreement {min(per_file_units):.4f} < {MIN_UNIT_AGREEMENT}")
    if changed:
        failures.append(f"files changed since export: {', '.join(changed)}")
    import transformers

    return {
        "schema": PARITY_SCHEMA,
        "status": "fail" if failures else "pass",
        "failures": failures,
        "tolerance": {"max_abs_diff": spec.tolerance, "min_unit_agreement": MIN_UNIT_AGREEMENT},
        "reference": {"model": str(spec.model), "sha256": loaded.sha256,
                      "forward": "fairseq extract_features of the original checkpoint, one file at a time, "
                                 "unpadded, fp32, CPU", "normalize": normalize},
        "exported": {"format": "hf" if isinstance(target, HfTarget) else "safetensors",
                     "directory": str(target.directory), "loader": target.loader, "files": digests,
                     "changed_since_export": changed},
        "kmeans": kmeans_record,
        "batched": {"how": target.batching, "items": batch_names},
        "environment": {"textless_stack": __version__, "torch": torch.__version__,
                        "transformers": transformers.__version__, "python": platform.python_version(),
                        "device": "cpu"},
        "summary": {
            "per_file_max_abs_diff": max(per_file_diffs),
            "per_file_min_unit_agreement": min(per_file_units) if per_file_units else None,
            "batched_max_abs_diff": max(batched_diffs),
            "batched_min_unit_agreement": min(batched_units) if batched_units else None,
            "per_file_hf_extractor_max_abs_diff": max((f["per_file_hf_extractor"]["max_abs_diff"] for f in files
                                                       if f.get("per_file_hf_extractor")), default=None),
        },
        "files": files,
    }


def _units_layer(directory: Path) -> int:
    record = _read_json(directory / "kmeans.json")
    if not isinstance(record.get("layer"), int):
        raise ParityError(f"{directory / 'kmeans.json'}: no layer in it")
    return record["layer"]


# --- writing --------------------------------------------------------------------------------------


def write(report: dict, directory: Path) -> None:
    from .outputs import atomic

    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("parity.json", json.dumps(report, indent=1) + "\n"), ("PARITY.md", markdown(report))):
        with atomic(directory / name, "w") as f:
            f.write(text)


def markdown(report: dict) -> str:
    s = report["summary"]
    ex = report["exported"]
    lines = [
        f"# Parity certificate: {report['status'].upper()}",
        "",
        f"- Reference: `{report['reference']['model']}` (sha256 `{report['reference']['sha256']}`), "
        f"{report['reference']['forward']}.",
        f"- Exported: `{ex['format']}` in `{ex['directory']}`, loaded by {ex['loader']}.",
        f"- Environment: textless-stack {report['environment']['textless_stack']}, torch "
        f"{report['environment']['torch']}, transformers {report['environment']['transformers']}, Python "
        f"{report['environment']['python']}, CPU.",
        f"- Verdict: per file, every layer within max |diff| {report['tolerance']['max_abs_diff']:g}"
        + (f" and units agreeing on >= {report['tolerance']['min_unit_agreement']:.0%} of frames"
           if report["kmeans"] else "") + ": " + ("yes" if report["status"] == "pass" else
                                                   "NO (" + "; ".join(report["failures"]) + ")"),
        "",
        "| | max abs diff | unit agreement |",
        "|---|---|---|",
        f"| one file at a time | {s['per_file_max_abs_diff']:.3g} | {_pct(s['per_file_min_unit_agreement'])} |",
        f"| batched: {report['batched']['how']} | {s['batched_max_abs_diff']:.3g} | "
        f"{_pct(s['batched_min_unit_agreement'])} |",
        "",
    ]
    normalization = s.get("per_file_hf_extractor_max_abs_diff") or 0.0
    if s["batched_max_abs_diff"] > max(report["tolerance"]["max_abs_diff"], 2 * normalization):
        lines += [f"**Batching caveat:** batched this way, features differ from the reference by up to "
                  f"{s['batched_max_abs_diff']:.3g}"
                  + (f" and units agree on only {_pct(s['batched_min_unit_agreement'])} of frames"
                     if s["batched_min_unit_agreement"] is not None else "")
                  + ". Run this model one file at a time, or batch with textless-stack's `features`.", ""]
    if s.get("per_file_hf_extractor_max_abs_diff") is not None:
        lines += [f"**Normalisation caveat:** this model normalises its waveform. Fed through HF's feature "
                  f"extractor (do_normalize, eps 1e-7) instead of fairseq's layer norm (eps 1e-5), one file at a "
                  f"time, features differ from the reference by up to {s['per_file_hf_extractor_max_abs_diff']:.3g}.",
                  ""]
    lines += ["## Per file and layer", "",
              "| audio | layer | per file: max abs diff | mean cosine | batched: max abs diff | mean cosine |",
              "|---|---|---|---|---|---|"]
    for f in report["files"]:
        for i, b in enumerate(f["batched"]["layers"]):
            p = f["per_file"]["layers"][i] if f["per_file"] else None
            lines.append(f"| {Path(f['audio']).name} | {b['layer']} | "
                         + (f"{p['max_abs_diff']:.3g} | {p['mean_cosine']:.6f}" if p else "- | -")
                         + f" | {b['max_abs_diff']:.3g} | {b['mean_cosine']:.6f} |")
    if report["kmeans"]:
        k = report["kmeans"]
        lines += ["", f"Units: layer {k['layer']}, k = {k['k']}; the reference k-means `{k['reference']}` against "
                      f"the exported `{k['exported']}`.", "", "| audio | per file | batched |", "|---|---|---|"]
        for f in report["files"]:
            lines.append(f"| {Path(f['audio']).name} | "
                         f"{_pct(f['per_file']['unit_agreement']) if f['per_file'] else '-'} | "
                         f"{_pct(f['batched']['unit_agreement'])} |")
    return "\n".join(lines) + "\n"


def verdict(report: dict, what: str) -> str:
    """The command's last lines: the verdict and the figures it rests on, then each failure."""
    s = report["summary"]
    line = (f"{what}: parity {report['status'].upper()}: per file max |diff| {s['per_file_max_abs_diff']:.3g}"
            + (f", units {s['per_file_min_unit_agreement']:.2%}" if s["per_file_min_unit_agreement"] is not None
               else "")
            + f"; batched as the target library batches: max |diff| {s['batched_max_abs_diff']:.3g}"
            + (f", units {s['batched_min_unit_agreement']:.2%}" if s["batched_min_unit_agreement"] is not None
               else ""))
    return "\n".join([line] + [f"  FAIL: {f}" for f in report["failures"]])


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2%}"
