"""Where a job is specified: typed specs for `features`, `resynth` and `continue`, and the functions that run them.

The command line ends at the door: commands build a spec from argparse and call `features(spec)`,
`resynth(spec)` or `continue_speech(spec)`; the demo, the tests and Python users build specs directly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import audio, inputs, integrity, outputs, pipeline, precision, provenance, registry, store
from .audio import AudioError
from .errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "hubert-base-ls960"


@dataclass(frozen=True)
class FeaturesSpec:
    inputs: tuple[str, ...]             # directories, globs, .tsv manifests, .jsonl
    output: Path
    model: str | None = None            # registry name or checkpoint path (default: the k-means model's)
    user_dir: str | None = None         # the fairseq plugin a checkpoint's model needs
    layer: int | None = None            # 1-based (default: the registry's layer; the top for a path)
    units: str | None = None            # k-means registry name or file
    features: str = "npy"               # npy | dump | none
    save_dtype: str = "float32"
    deduplicate: bool = False
    f0: bool = False                    # per-unit F0 in each units record (textlesslib's need_f0), with durations
    format: str = "jsonl"               # jsonl | textlesslib (also its transcription files: streams.py)
    separator: str = " "                # --format textlesslib: between values
    preserve_name: bool = False         # --format textlesslib: "name<TAB>" before each line
    split: str = "all"
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    dtype: str = "fp32"                 # fp32 | bf16 | fp16 (precision.py decides what that means)
    max_chunk: int | None = None
    batch_seconds: float | None = None  # default: the precision policy's
    shard_index: int | None = None      # default: SLURM_ARRAY_TASK_ID
    num_shards: int | None = None       # default: SLURM_ARRAY_TASK_COUNT
    progress: bool = True
    workers: int | None = None          # decoding processes (decoding.py); default: the task's CPUs

    def __post_init__(self):
        if self.workers is not None and self.workers < 0:
            raise UserError(f"--workers {self.workers}: a number of processes, 0 to decode in one thread")
        _one_of("features", self.features, ("none",) if isinstance(self, ResynthSpec) else ("npy", "dump", "none"))
        _one_of("save_dtype", self.save_dtype, ("float32", "float16"))
        _one_of("dtype", self.dtype, precision.DTYPES)
        _one_of("format", self.format, ("jsonl", "textlesslib"))
        if isinstance(self.inputs, str) or not self.inputs:
            raise UserError(f"inputs must be a non-empty sequence of paths, got {self.inputs!r}")
        if self.f0 and (isinstance(self, ResynthSpec) or not self.units):
            raise UserError("--f0 gives one F0 value per unit: it needs --units (and is for features only)")
        if self.format == "textlesslib" and (isinstance(self, ResynthSpec) or not self.units):
            raise UserError("--format textlesslib writes unit streams: it needs --units (and is for features only)")

    @classmethod
    def from_namespace(cls, ns) -> "FeaturesSpec":
        """argparse's Namespace -> a spec (only the spec's fields are read)."""
        values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
        values["inputs"] = tuple(values["inputs"])
        return cls(**values)


def _one_of(name: str, value, allowed) -> None:
    if value not in allowed:
        raise UserError(f"{name} {value!r}: one of {', '.join(map(str, allowed))}")


@dataclass(frozen=True)
class ResynthSpec(FeaturesSpec):
    vocoder: str = ""                   # registry vocoder set, or a vocoder .json
    features: str = "none"
    speaker: str | None = None
    style: str | None = None
    sample_rate: int | None = None      # default: the vocoder's
    seed: int = 0
    write_units: bool = False
    max_decoder_steps: int = 2000
    denoiser_strength: float = 0.1


@dataclass(frozen=True)
class ContinueSpec:
    """Speech continuation with a unit LM (continuation.py): audio or unit prompts -> units (-> speech).
    Sampling settings left None take the LM's own defaults (GSLM's sample.py, TWIST's speech_lm.py)."""
    lm: str                             # registry unit LM (…-ulm, twist-…), or a directory (ulm.open_lm)
    output: Path
    inputs: tuple[str, ...] = ()        # audio prompts: directories, globs, manifests
    prompts: Path | None = None         # or unit prompts: one line of unit numbers per prompt
    units: str | None = None            # audio prompts: the LM's k-means (default: a registry LM's own)
    model: str | None = None            # audio prompts: its dense model (default: the k-means model's)
    layer: int | None = None
    prompt_seconds: float | None = None
    prefix_size: int = -1               # the first N units of each prompt are the prefix; -1: all of them
    vocoder: str | None = None          # speak the sequences (registry vocoder set or .json); else units only
    speaker: str | None = None
    style: str | None = None
    temperature: float | None = None
    seed: int = 0
    max_len_a: float | None = None
    max_len_b: int | None = None
    max_len: int | None = None
    samples_per_prompt: int = 1
    batch_size: int = 16
    device: str = "auto"
    shard_index: int | None = None
    num_shards: int | None = None
    progress: bool = True

    def __post_init__(self):
        if bool(self.inputs) == (self.prompts is not None):
            raise UserError("give audio prompts (INPUT...) or unit prompts (--prompts FILE), not both or neither")
        if self.samples_per_prompt < 1 or self.batch_size < 1 or (self.max_len_b is not None and self.max_len_b < 0):
            raise UserError("--samples-per-prompt and --batch-size are at least 1, --max-len-b at least 0")
        if self.max_len is not None and self.max_len < 2:
            raise UserError(f"--max-len {self.max_len}: a continuation needs at least 2 units")
        if self.prefix_size == 0 or self.prefix_size < -1:
            raise UserError(f"--prefix-size {self.prefix_size}: a number of units, or -1 for the whole prompt")
        if self.temperature is not None and not self.temperature > 0:
            raise UserError(f"--temperature {self.temperature}: sampling needs a temperature above 0")
        if self.prompt_seconds is not None and not self.prompt_seconds > 0:
            raise UserError(f"--prompt-seconds {self.prompt_seconds}: a prompt needs a positive length")

    @classmethod
    def from_namespace(cls, ns) -> "ContinueSpec":
        values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
        values["inputs"] = tuple(values.get("inputs") or ())
        return cls(**values)

    def sampling(self, defaults):
        """The settings given, else the LM's own."""
        given = {"temperature": self.temperature, "max_len_a": self.max_len_a, "max_len_b": self.max_len_b,
                 "max_len": self.max_len}
        return dataclasses.replace(defaults, seed=self.seed, batch_size=self.batch_size,
                                   **{k: v for k, v in given.items() if v is not None})


def continue_speech(spec: ContinueSpec):
    """Prompts -> the LM's samples (-> speech), chunk by chunk; commands/continue_cmd.py lists the outputs."""
    outputs.check_writable(spec.output)  # before minutes of loading and sampling
    index, count = _shard(spec)
    with outputs.shard_lock(spec.output, outputs.stem("continue", index, count)):
        return _continue(spec, index, count)


def _continue(spec: ContinueSpec, index: int, count: int):
    import hashlib

    from tqdm import tqdm

    from . import continuation as cont
    from .ulm import UlmError, open_lm

    directory, own_kmeans = _lm_directory(spec)
    units = spec.units or own_kmeans
    if spec.inputs and not units:
        raise UserError(f"audio prompts need --units: the k-means the LM in {spec.lm} was trained on")
    device = _device(spec.device)
    lm = open_lm(directory, device)
    sampling = spec.sampling(lm.defaults)
    if sampling.max_len is not None and lm.family == "gslm":  # before continue.json ties the output to it
        raise UlmError("--max-len: fairseq's generator takes no cap; bound GSLM's outputs with --max-len-a/-b")
    record = {"lm": spec.lm, "lm_family": lm.family, "lm_sha256": lm.sha256, "sampling": dataclasses.asdict(sampling),
              "samples_per_prompt": spec.samples_per_prompt, "prefix_size": spec.prefix_size,
              "chunk_seeds": "seed + chunk index; chunk b holds sequences b*batch_size .. (b+1)*batch_size - 1"}
    hop, prep = None, None
    if spec.prompts is not None:
        given = cont.unit_prompts(spec.prompts, lm.known)
        names = [p.name for p in given]
        record["prompts_sha256"] = integrity.sha256_file(spec.prompts)
    else:
        prep = prepare(FeaturesSpec(inputs=spec.inputs, output=spec.output, model=spec.model, layer=spec.layer,
                                    device=spec.device, shard_index=0, num_shards=1), units)
        if prep.quantizer.size != lm.units:
            raise UlmError(f"--units {units} gives {prep.quantizer.size} units, but the LM in {spec.lm} was "
                           f"trained on {lm.units}: they do not belong together")
        names = [item.key for item in prep.items]
        record.update(model_sha256=prep.model_sha256, layer=prep.layer, units_sha256=prep.units_sha256,
                      prompt_seconds=spec.prompt_seconds,
                      inputs_sha256=hashlib.sha256("\n".join(names).encode()).hexdigest())
        hop = prep.encoder.geometry.hop
    vocoder = None
    if spec.vocoder:
        from .vocoders import Vocoder, VocoderFiles

        with contextlib.redirect_stdout(sys.stderr):  # textlesslib prints progress messages
            vocoder = Vocoder(VocoderFiles.resolve(spec.vocoder), device)
        vocoder.check_units(lm.units, hop, spec.vocoder, f"the LM in {spec.lm}")
        if vocoder.kind == "hifigan" and not vocoder.predicts_durations:
            raise UlmError(f"--vocoder {spec.vocoder}: this CodeHiFiGAN speaks every unit for one frame, but the LM's "
                           "units are deduplicated: use one with a duration predictor, or a Tacotron")
        speaker, style = vocoder.index("speaker", spec.speaker), vocoder.index("style", spec.style)
        record["vocoder"] = {"files": vocoder.digests, "speaker": speaker, "style": style}
    _claim_continue(spec.output, record)

    plan = cont.Plan(len(names), spec.samples_per_prompt, spec.batch_size, index, count)
    chunks = cont.Chunks(spec.output)
    encoded: dict[int, list[int] | str] = {}  # prompt index -> units, or why it failed

    def prompt(i: int) -> list[int] | str:
        if i not in encoded:
            if prep is None:
                encoded[i] = given[i].units
            else:
                try:
                    encoded[i] = cont.audio_prompt(prep.items[i], prep.encoder, prep.quantizer, spec.prompt_seconds)
                except AudioError as e:
                    encoded[i] = str(e)
            if not isinstance(encoded[i], str):
                encoded[i] = encoded[i][:spec.prefix_size] if spec.prefix_size > 0 else encoded[i]
                encoded[i] = cont.room(cont.Prompt(names[i], encoded[i]), lm.limit(len(encoded[i]), sampling)) \
                    or encoded[i]
        return encoded[i]

    result, seen = cont.Result(), set()
    mine = plan.mine()
    log.info("sampling chunks %d..%d of %d (%d prompts x %d, batch %d), seeds %d + chunk, temperature %g",
             mine.start, mine.stop - 1, plan.chunks, len(names), spec.samples_per_prompt, spec.batch_size,
             spec.seed, sampling.temperature)
    for b in tqdm(mine, desc="continue", unit="chunk", disable=not spec.progress):
        part = chunks.read(chunks.units_part(b))
        if part is None:
            part = _sample_chunk(lm, sampling, spec.seed + b, plan.sequences(b), spec.samples_per_prompt, names,
                                 prompt)
            chunks.write(chunks.units_part(b), part)
        done = chunks.read(chunks.done_part(b))
        if done is None:
            failures = []
            if vocoder is not None:
                failures = cont.speak(spec.output, part["continuations"], lambda name, seq: vocoder.synthesize(
                    seq, name, spec.seed, speaker, style, deduplicated=vocoder.predicts_durations),
                    vocoder.sample_rate)
            done = {"errors": failures}
            chunks.write(chunks.done_part(b), done)
        seen |= {r["prompt"] for r in part["continuations"]} | {e["path"] for e in part["errors"]}
        result.outputs += len(part["continuations"])
        result.failures += [(e["path"], e["error"]) for e in part["errors"] + done["errors"]]
    result.prompts = len(seen)
    for key, reason in result.failures:
        log.error("%s: %s", key, reason)
    result.complete = chunks.assemble(plan.chunks)
    return result


def _sample_chunk(lm, sampling, seed: int, sequences: range, samples: int, names: list[str], prompt) -> dict:
    """One chunk: its prompts' units, the LM's samples for them, and the prompts that failed (recorded in the
    chunk that holds their first sequence)."""
    from .continuation import output_name

    wanted = [(i // samples, i % samples) for i in sequences]
    errors = [{"path": names[p], "error": prompt(p)} for p, s in wanted if s == 0 and isinstance(prompt(p), str)]
    kept = [(p, s) for p, s in wanted if not isinstance(prompt(p), str)]
    sampled = lm.sample([prompt(p) for p, _ in kept], sampling, seed) if kept else []
    log.debug("chunk seeded %d: %s", seed, ", ".join(output_name(names[p], s) for p, s in kept))
    return {"seed": seed, "errors": errors,
            "continuations": [{"prompt": names[p], "sample": s, "prompt_units": prompt(p), "units": seq}
                              for (p, s), seq in zip(kept, sampled)]}


def _claim_continue(out: Path, record: dict) -> None:
    """continue.json says what the outputs are; a resumed (or another shard's) run must be the same job."""
    path = out / "continue.json"
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        old = None
    except ValueError:
        raise outputs.OutputError(f"{path}: not readable JSON: remove it, or choose another --output") from None
    if old is not None and old != record:
        differ = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        raise outputs.OutputError(f"{path}: {out} holds another job's continuations (differing: {', '.join(differ)}):"
                                  " choose another --output, or rerun with the same settings to resume")
    if old is None:
        outputs.save_json(path, record)


def _lm_directory(spec: ContinueSpec) -> tuple[Path, str | None]:
    """The LM's directory and, for a registry LM, the k-means it models; registry mismatches refused by name."""
    from .ulm import UlmError

    entry = registry.MODELS.get(spec.lm)
    if entry is None:
        return Path(spec.lm), None
    if entry.kind != "ulm":
        raise UlmError(f"--lm {spec.lm} is a {entry.kind}, not a unit LM (`textless-stack models list` shows them)")
    for option, value, trained in (("--units", spec.units, spec.units),
                                   ("--vocoder", spec.vocoder, spec.vocoder and registry.vocoder_kmeans(spec.vocoder))):
        if value in registry.MODELS and trained != entry.kmeans:
            raise UlmError(f"{option} {value} is for units of {trained}, but {spec.lm} models units of "
                           f"{entry.kmeans}: they do not belong together")
    root, _ = store.unpacked(spec.lm)
    found = sorted({p.parent for p in root.rglob("checkpoint_best.pt") if (p.parent / "dict.txt").is_file()}
                   | {p.parent for p in root.rglob("config.json")})
    if len(found) != 1:
        raise UlmError(f"{root}: expected one unit LM directory (checkpoint_best.pt + dict.txt, or a Hugging Face "
                       f"config.json) in {spec.lm}'s archive, found {len(found)}")
    return found[0], entry.kmeans


@dataclass
class Prepared:
    """What `features` and `resynth` share: the items of this shard, the encoder, the quantizer."""
    items: list
    index: int
    count: int
    device: object
    encoder: object
    quantizer: object | None
    model_sha256: str
    units_sha256: str | None
    layer: int | None
    batch_seconds: float
    model_ref: str = ""                 # the model and k-means as given (registry name or path)
    units_ref: str | None = None

    def provenance(self, spec: FeaturesSpec, stem: str, vocoder: dict | None = None) -> dict:
        """This process's run, for OUTPUT/provenance.json: what `verify` needs to recompute it, and where."""
        recipe = {"inputs": [_absolute(i) for i in spec.inputs], "model": _absolute(self.model_ref),
                  "units": _absolute(self.units_ref) if self.units_ref else None,
                  "user_dir": os.path.abspath(spec.user_dir) if spec.user_dir else None,
                  "layer": self.layer, "dtype": spec.dtype, "max_chunk": self.encoder.max_chunk,
                  "batch_seconds": self.batch_seconds, "deduplicate": spec.deduplicate, "features": spec.features,
                  "save_dtype": spec.save_dtype, "f0": spec.f0, "split": spec.split, "num_shards": self.count}
        models = {"dense": self.model_sha256, "kmeans": self.units_sha256,
                  "vocoder": vocoder["files"] if vocoder else None}
        forward = {**dataclasses.asdict(self.encoder.precision), "batch_seconds": self.batch_seconds,
                   "max_chunk": self.encoder.max_chunk, "resampler": audio.resampler()}
        return provenance.run_record(stem, len(self.items), self.device, forward, recipe, models)

    def record(self, spec: FeaturesSpec, command: str, **kw) -> outputs.JobRecord:
        return outputs.JobRecord(
            command=command, model_sha256=self.model_sha256, layer=self.layer, dtype=spec.dtype,
            max_chunk=self.encoder.max_chunk, units_sha256=self.units_sha256, deduplicate=spec.deduplicate,
            split=spec.split, num_shards=self.count, features=spec.features, save_dtype=spec.save_dtype,
            frame_hop=self.encoder.geometry.hop, f0=spec.f0, resampler=audio.resampler(), **kw)


def features(spec: FeaturesSpec, only: frozenset[str] | None = None) -> pipeline.Summary:
    with _claim_shard(spec):  # before minutes of model loading, not after
        prep = prepare(spec, spec.units, only)
        streams = ({"separator": spec.separator, "preserve_name": spec.preserve_name}
                   if spec.format == "textlesslib" else None)
        layout = outputs.Layout(spec.output, spec.features, prep.quantizer is not None, spec.split, prep.index,
                                prep.count, streams=streams)
        record = prep.record(spec, "features", units=prep.quantizer is not None, wav=False, streams=streams)
        _claim(spec.output, layout, record, prep.provenance(spec, layout.stem))
        summary = pipeline.run(pipeline.Job(
            items=prep.items, layout=layout, encoder=prep.encoder, quantizer=prep.quantizer,
            deduplicate=spec.deduplicate, save_dtype=spec.save_dtype, batch_seconds=prep.batch_seconds,
            progress=spec.progress, f0=spec.f0, workers=spec.workers,
        ))
        _finish(spec.output, record)
        return summary


def _claim(out: Path, layout: outputs.Layout, record: outputs.JobRecord, run: dict) -> None:
    """Tie the directory to this job, and record this process's run in its shard's provenance."""
    unrecorded = provenance.begin(out, layout.stem)  # read before the claim writes the job record
    layout.claim(record)
    provenance.add_run(out, run, unrecorded)


def _finish(out: Path, record: outputs.JobRecord) -> None:
    """A single-shard job is complete here; a sharded one gets its provenance.json from `merge`."""
    if record.num_shards == 1:
        provenance.assemble(out, record)


def _absolute(ref: str) -> str:
    """A path (or glob) as an absolute one, which another working directory finds; a registry name as it is."""
    return ref if ref in registry.MODELS else os.path.abspath(ref)


@contextlib.contextmanager
def _claim_shard(spec: FeaturesSpec):
    """The output directory takes files, and this process is the only one on its shard."""
    outputs.check_writable(spec.output)
    index, count = _shard(spec)
    with outputs.shard_lock(spec.output, outputs.stem(spec.split, index, count)):
        yield


def resynth(spec: ResynthSpec) -> pipeline.Summary:
    with _claim_shard(spec):  # before any download or model loading
        return _resynth(spec)


def _resynth(spec: ResynthSpec) -> pipeline.Summary:
    import torch

    from .kmeans import deduplicate
    from .vocoders import Vocoder, VocoderError, VocoderFiles

    files = VocoderFiles.resolve(spec.vocoder)
    units = spec.units or files.kmeans
    if units is None:
        raise inputs.InputError(f"{spec.vocoder} does not say which k-means it was trained on: pass --units")
    prep = prepare(spec, units)
    with contextlib.redirect_stdout(sys.stderr):  # textlesslib prints progress messages
        vocoder = Vocoder(files, prep.device, spec.max_decoder_steps, spec.denoiser_strength)
    vocoder.check_units(prep.quantizer.size, prep.encoder.geometry.hop, spec.vocoder, units)
    speaker, style = vocoder.index("speaker", spec.speaker), vocoder.index("style", spec.style)
    if spec.deduplicate and vocoder.kind == "hifigan" and not vocoder.predicts_durations:
        raise VocoderError("--deduplicate: this CodeHiFiGAN has no duration predictor, so it needs every "
                           "repeated unit: drop --deduplicate")
    rate = spec.sample_rate or vocoder.sample_rate
    log.info("vocoder %s (%s, %d Hz%s)", spec.vocoder, vocoder.kind, vocoder.sample_rate,
             f", resampled to {rate} Hz" if rate != vocoder.sample_rate else "")

    def synthesize(key: str, codes: torch.Tensor):
        # Tacotron collapses repeats by its own hparams; CodeHiFiGAN predicts their durations
        seq = deduplicate(codes)[0] if spec.deduplicate and vocoder.kind == "hifigan" else codes.tolist()
        wav = vocoder.synthesize(seq, key, spec.seed, speaker, style, deduplicated=spec.deduplicate)
        if rate != vocoder.sample_rate:
            import torchaudio.functional

            wav = torchaudio.functional.resample(torch.from_numpy(wav), vocoder.sample_rate, rate).numpy()
        return wav

    layout = outputs.Layout(spec.output, "none", spec.write_units, spec.split, prep.index, prep.count, wav=True)
    synthesis = {"files": vocoder.digests, "speaker": speaker, "style": style, "sample_rate": rate, "seed": spec.seed,
                 "max_decoder_steps": spec.max_decoder_steps, "denoiser_strength": spec.denoiser_strength}
    record = prep.record(spec, "resynth", units=spec.write_units, wav=True, vocoder=synthesis)
    run = prep.provenance(spec, layout.stem, vocoder=synthesis)
    run["recipe"].update(vocoder=_absolute(spec.vocoder), **{k: v for k, v in synthesis.items() if k != "files"})
    _claim(spec.output, layout, record, run)
    summary = pipeline.run(pipeline.Job(
        items=prep.items, layout=layout, encoder=prep.encoder, quantizer=prep.quantizer,
        deduplicate=spec.deduplicate, batch_seconds=prep.batch_seconds, progress=spec.progress,
        synthesize=synthesize, sample_rate=rate, label="resynth", workers=spec.workers,
    ))
    _finish(spec.output, record)
    return summary


def prepare(spec: FeaturesSpec, units: str | None, only: frozenset[str] | None = None) -> Prepared:
    """only: these keys of the inputs, no others (`verify` recomputes a sample)."""
    from .dense import open_dense

    items = [item for one in spec.inputs for item in inputs.collect(one)]
    inputs.check_unique(items)
    if only is not None:
        items = [item for item in items if item.key in only]
    index, count = _shard(spec)
    items = inputs.shard(items, index, count)
    log.info("shard %d of %d: %d files", index, count, len(items))

    kmeans_entry = registry.MODELS.get(units) if units else None
    model_name = spec.model or (kmeans_entry.dense if kmeans_entry else DEFAULT_MODEL)
    entry = registry.MODELS.get(model_name)
    layer = spec.layer if spec.layer is not None else (entry.layer if entry else None)

    device = _device(spec.device)
    dense = open_dense(model_name, layer, device, spec.dtype, spec.max_chunk, spec.user_dir)
    quantizer, units_sha256 = None, None
    if units:
        from .kmeans import Quantizer, read_centroids

        kmeans = store.resolve(units)
        quantizer, units_sha256 = Quantizer(read_centroids(kmeans.path), device), kmeans.sha256
        if dense.dim is not None and quantizer.dim != dense.dim:
            raise inputs.InputError(f"k-means {units} has {quantizer.dim}-dimensional centroids, but "
                                    f"{model_name} gives {dense.dim}-dimensional features: they do not belong together")
    encoder = dense.encoder
    batch_seconds = spec.batch_seconds if spec.batch_seconds is not None else encoder.precision.batch_seconds
    log.info("model %s, layer %s, %d Hz frames, %s %s, batch %.0f s", model_name, dense.layer or "top",
             audio.SAMPLE_RATE // encoder.geometry.hop, device, spec.dtype, batch_seconds)
    return Prepared(items, index, count, device, encoder, quantizer, dense.sha256, units_sha256, dense.layer,
                    batch_seconds, model_name, units)


def _shard(spec: FeaturesSpec) -> tuple[int, int]:
    index, count = spec.shard_index, spec.num_shards
    if index is None and os.environ.get("SLURM_ARRAY_TASK_ID"):
        index = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    if count is None and os.environ.get("SLURM_ARRAY_TASK_COUNT"):
        count = int(os.environ["SLURM_ARRAY_TASK_COUNT"])
    return index or 0, count or 1


def _device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("no CUDA device visible: running on CPU")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise UserError(f"--device {name}: {e}") from None
