"""Units -> speech with textlesslib's vocoders (patched at build time: device-agnostic, fp16 only on CUDA).

Two families, each a set of files:
- tacotron: GSLM's Tacotron2 (units -> mel) + its unit dictionary + WaveGlow (mel -> 22.05 kHz) + denoiser;
- hifigan: CodeHiFiGAN (units -> 16 kHz) + its JSON config (+ speakers.txt / styles.txt for Expresso).

A set comes from the registry by name (`{k-means name}-tacotron` or `-hifigan`, e.g.
`hubert-base-ls960-kmeans-100-tacotron`), or from local files described by a small JSON file:
  {"kind": "hifigan", "model": "g.pt", "config": "config.json", "speakers": "speakers.txt", "styles": "styles.txt"}
  {"kind": "tacotron", "model": "tts.pt", "codes": "code_dict", "waveglow": "waveglow.pt"}
(paths relative to the JSON file). Every torch.load inside textlesslib goes through checkpoint_policy.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import integrity, registry, store
from .errors import UserError
from .integrity import Verified

log = logging.getLogger(__name__)

KINDS = ("tacotron", "hifigan")
_PARTS = {"tacotron": {"codes": "-codes"}, "hifigan": {"config": "-config", "speakers": "-speakers", "styles": "-styles"}}
_OPTIONAL = {"speakers", "styles"}


class VocoderError(UserError):
    pass


@dataclass
class VocoderFiles:
    """Each file verified (hashed once): the digests also identify the job's outputs."""
    kind: str
    model: Verified
    codes: Verified | None = None      # tacotron: unit dictionary
    waveglow: Verified | None = None   # tacotron: mel -> waveform
    config: Verified | None = None     # hifigan
    speakers: Verified | None = None   # hifigan (multi-speaker)
    styles: Verified | None = None     # hifigan (multi-style)
    kmeans: str | None = None      # the registry k-means model the set was trained on

    @classmethod
    def resolve(cls, spec: str) -> "VocoderFiles":
        if spec in registry.MODELS:
            return cls._from_registry(spec)
        path = Path(spec)
        if path.suffix == ".json" and path.is_file():
            return cls._from_json(path)
        known = ", ".join(n for n, m in registry.MODELS.items() if m.kind in KINDS)
        raise VocoderError(f"--vocoder {spec}: neither a registry vocoder ({known}) nor a .json file describing one")

    @classmethod
    def _from_registry(cls, name: str) -> "VocoderFiles":
        model = registry.MODELS[name]
        if model.kind not in KINDS:
            raise VocoderError(f"{name} is a {model.kind} file, not a vocoder: name the set (…-tacotron or …-hifigan)")
        files = {"model": store.resolve(name)}
        for part, suffix in _PARTS[model.kind].items():
            if name + suffix in registry.MODELS:
                files[part] = store.resolve(name + suffix)
            elif part not in _OPTIONAL:
                raise VocoderError(f"registry has no {name + suffix}")
        if model.kind == "tacotron":
            files["waveglow"] = store.resolve("waveglow")
        return cls(kind=model.kind, kmeans=registry.vocoder_kmeans(name), **files)

    @classmethod
    def _from_json(cls, path: Path) -> "VocoderFiles":
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise VocoderError(f"{path}: not JSON: {e}") from None
        kind = spec.get("kind")
        if kind not in KINDS:
            raise VocoderError(f"{path}: \"kind\" must be one of {KINDS}, got {kind!r}")
        required = ["model", *(p for p in _PARTS[kind] if p not in _OPTIONAL)] + (["waveglow"] if kind == "tacotron" else [])
        files = {}
        for part in ["model", *_PARTS[kind], "waveglow"]:
            if spec.get(part) is None:
                if part in required:
                    raise VocoderError(f"{path}: a {kind} vocoder needs \"{part}\"")
                continue
            file = (path.parent / spec[part]).resolve()
            if not file.is_file():
                raise VocoderError(f"{path}: {part} file {file} does not exist")
            files[part] = integrity.verify(file)
        return cls(kind=kind, kmeans=spec.get("kmeans"), **files)


class Vocoder:
    """One loaded vocoder; `synthesize(units)` -> float32 waveform at `sample_rate`."""

    def __init__(self, files: VocoderFiles, device: torch.device, max_decoder_steps: int = 2000,
                 denoiser_strength: float = 0.1):
        self.digests = {part: f.sha256 for part, f in vars(files).items() if isinstance(f, Verified)}
        self.files, self.device, self.kind = files, device, files.kind
        try:
            if files.kind == "tacotron":
                from textless.vocoders.tacotron2.vocoder import TacotronVocoder

                self.model = TacotronVocoder(str(files.model.path), str(files.codes.path), str(files.waveglow.path),
                                             max_decoder_steps=max_decoder_steps, denoiser_strength=denoiser_strength)
                if device.type != "cuda":  # textlesslib (patched) halves Tacotron only where CUDA exists
                    self.model.float()
                self.speakers = self.styles = None
            else:
                from textless.vocoders.hifigan.vocoder import CodeHiFiGANVocoder

                self.model = CodeHiFiGANVocoder(str(files.model.path), str(files.config.path),
                                                str(files.speakers.path) if files.speakers else None,
                                                str(files.styles.path) if files.styles else None)
                self.speakers, self.styles = self.model.speakers, self.model.styles
                if self.model.model.f0:
                    raise VocoderError(f"{files.config.path}: this CodeHiFiGAN is conditioned on an F0 stream, "
                                       "which resynth does not compute")
        except ImportError as e:
            raise VocoderError(f"textlesslib is not in this environment ({e}): resynth needs an image built "
                               "with it (TEXTLESSLIB_SRC=...)") from None
        self.model.to(device).eval()
        self.sample_rate = int(self.model.output_sample_rate)

    @property
    def multispeaker(self) -> bool:
        return self.kind == "hifigan" and bool(self.model.model.multispkr)

    @property
    def multistyle(self) -> bool:
        return self.kind == "hifigan" and bool(self.model.model.multistyle)

    @property
    def predicts_durations(self) -> bool:
        return self.kind == "hifigan" and self.model.model.dur_predictor is not None

    def check_units(self, k: int, hop: int | None, name: str, source: str) -> None:
        """Refuse units this vocoder was not trained on: more unit ids than it knows, or (CodeHiFiGAN, which
        renders each unit as a fixed number of samples) another frame rate, e.g. 50 Hz units into a 25 Hz vocoder.
        hop: samples per unit at 16 kHz, where known."""
        if self.kind == "tacotron":
            known = len(self.files.codes.path.read_text().split())
        else:
            known = int(self.model.cfg["num_embeddings"])
        if k > known:
            raise VocoderError(f"--vocoder {name} knows {known} units, but {source} gives {k}: it was trained on "
                               "other units")
        if self.kind == "hifigan" and hop is not None:
            per_unit = math.prod(self.model.cfg["upsample_rates"])
            if per_unit * 16000 != hop * self.sample_rate:
                raise VocoderError(
                    f"--vocoder {name} speaks one unit per {per_unit} samples at {self.sample_rate} Hz "
                    f"({1000 * per_unit / self.sample_rate:g} ms), but the dense model gives a frame every {hop} "
                    f"samples at 16 kHz ({1000 * hop / 16000:g} ms): it was trained on units of another frame rate")

    def index(self, what: str, value: str | None) -> int:
        """A speaker/style given by name (from speakers.txt/styles.txt) or by index."""
        names = self.speakers if what == "speaker" else self.styles
        supported = self.multispeaker if what == "speaker" else self.multistyle
        if value is None:
            return 0
        if not supported:
            raise VocoderError(f"this vocoder has no {what}s: drop --{what}")
        if names and value in names:
            return names.index(value)
        if value.isdigit() and (not names or int(value) < len(names)):
            return int(value)
        listed = f": one of {', '.join(names[:20])}{' ...' if len(names) > 20 else ''}" if names else ""
        raise VocoderError(f"unknown {what} {value!r}{listed}")

    def synthesize(self, units: list[int], key: str, seed: int, speaker: int = 0, style: int = 0,
                   deduplicated: bool = False) -> np.ndarray:
        # Per-file seed: a resumed or resharded run writes the same audio for the same file.
        torch.manual_seed(seed ^ zlib.crc32(key.encode()))
        codes = torch.tensor(units, dtype=torch.long, device=self.device)
        with torch.inference_mode():
            if self.kind == "tacotron":
                wav = self.model(codes)
            else:
                wav = self.model(codes.view(1, -1), speaker_id=speaker, style_id=style,
                                 dur_prediction=deduplicated and self.predicts_durations)
        return wav.detach().float().cpu().numpy().reshape(-1)
