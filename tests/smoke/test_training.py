"""Paper-result runs inside each image: fairseq's own CLI and HuBERT's training pipeline, tiny, on CPU.

Everything a run writes goes to the one bound work directory (the Docker backend runs as uid 1000
with a read-only root and a tmpfs /tmp, so a write anywhere else fails the step). The checkpoints
training writes then load through our loader (strict) and, for HuBERT, give features.
"""

from __future__ import annotations

import json
import random

import numpy as np
import soundfile as sf
from support import write_audio

WORK = "/workdir"  # not a prefix of host paths (the local backend maps it back)

PLUGIN = '''
from fairseq.models import register_model_architecture
from fairseq.models.transformer import base_architecture


@register_model_architecture("transformer", "tiny_transformer_plugin")
def tiny_transformer_plugin(args):
    for side in ("encoder", "decoder"):
        for name, value in (("embed_dim", 16), ("ffn_embed_dim", 32), ("layers", 1), ("attention_heads", 2)):
            setattr(args, f"{side}_{name}", getattr(args, f"{side}_{name}", value))
    base_architecture(args)
'''

TINY_HUBERT_CONFIG = '''# @package _group_
common:
  fp16: false
  cpu: true
  log_format: simple
  log_interval: 1
  seed: 1
checkpoint:
  save_dir: ???
  no_epoch_checkpoints: true
distributed_training:
  ddp_backend: no_c10d
  distributed_world_size: 1
task:
  _name: hubert_pretraining
  data: ???
  label_dir: ???
  labels: ["km"]
  label_rate: 100
  sample_rate: 16000
  max_sample_size: 32000
  min_sample_size: 8000
  pad_audio: false
  random_crop: true
  normalize: false
dataset:
  num_workers: 0
  max_tokens: 64000
  skip_invalid_size_inputs_valid_test: true
  validate_interval: 1
criterion:
  _name: hubert
  pred_masked_weight: 1.0
  pred_nomask_weight: 0.0
  loss_weights: [10,]
optimization:
  max_update: 4
  lr: [0.0005]
  clip_norm: 10.0
optimizer:
  _name: adam
  adam_betas: (0.9,0.98)
  adam_eps: 1e-06
lr_scheduler:
  _name: polynomial_decay
  warmup_updates: 2
model:
  _name: hubert
  label_rate: 100
  mask_prob: 0.5
  extractor_mode: default
  conv_feature_layers: '[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2'
  encoder_layers: 2
  encoder_embed_dim: 32
  encoder_ffn_embed_dim: 64
  encoder_attention_heads: 2
  conv_pos: 16
  conv_pos_groups: 4
  final_dim: 16
  encoder_layerdrop: 0.0
  untie_final_proj: true
hydra:
  run:
    dir: ???
'''


def step(container, work, entrypoint, *args):
    r = container.run(list(args), binds=[(work, WORK)], **({"entrypoint": entrypoint} if entrypoint else {}))
    assert r.returncode == 0, f"{entrypoint} {' '.join(map(str, args))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def assert_written_by_the_image_user(container, paths):
    if container.name == "docker":  # the image's user, not root
        assert {p.stat().st_uid for p in paths} == {1000}


def test_fairseq_preprocess_train_generate_with_a_user_dir_plugin(container, shared_dir):
    work = shared_dir("mt")
    w = container.path(work, WORK)
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(12)]
    for split, n in (("train", 300), ("valid", 20), ("test", 10)):
        src = [" ".join(rng.choices(vocab, k=rng.randint(3, 8))) for _ in range(n)]
        (work / f"{split}.src").write_text("\n".join(src) + "\n")
        (work / f"{split}.tgt").write_text("\n".join(" ".join(reversed(s.split())) for s in src) + "\n")
    (work / "plugin").mkdir()
    (work / "plugin" / "__init__.py").write_text(PLUGIN)

    step(container, work, "fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
         "--trainpref", f"{w}/train", "--validpref", f"{w}/valid", "--testpref", f"{w}/test",
         "--destdir", f"{w}/data-bin", "--workers", "1")
    assert (work / "data-bin" / "dict.src.txt").is_file()
    r = step(container, work, "fairseq-train", f"{w}/data-bin", "--user-dir", f"{w}/plugin",
             "--arch", "tiny_transformer_plugin", "--task", "translation", "--optimizer", "adam", "--lr", "0.001",
             "--max-tokens", "2000", "--max-update", "6", "--save-dir", f"{w}/ckpt", "--cpu", "--seed", "1",
             "--no-progress-bar", "--log-format", "simple", "--log-interval", "2", "--no-epoch-checkpoints")
    assert "done training" in r.stdout + r.stderr
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    assert ckpt.is_file()
    assert_written_by_the_image_user(container, [ckpt, work / "data-bin" / "dict.src.txt"])

    r = step(container, work, "fairseq-generate", f"{w}/data-bin", "--path", f"{w}/ckpt/checkpoint_last.pt",
             "--user-dir", f"{w}/plugin", "--gen-subset", "test", "--beam", "2", "--batch-size", "8", "--cpu")
    hypotheses = [line for line in r.stdout.splitlines() if line.startswith("H-")]
    assert len(hypotheses) == 10, r.stdout[-2000:]

    refused = container.run(["inspect", f"{w}/ckpt/checkpoint_last.pt"], binds=[(work, WORK)])
    assert refused.returncode == 1 and "--user-dir" in refused.stderr and "Traceback" not in refused.stderr
    r = step(container, work, None, "inspect", f"{w}/ckpt/checkpoint_last.pt", "--user-dir", f"{w}/plugin")
    described = json.loads(r.stdout)
    assert described["model"] == "tiny_transformer_plugin" and described["task"] == "translation"
    assert described["encoder_layers"] == 1 and described["parameters"] > 1000 and described["upgrades"] == []


def test_hubert_simple_kmeans_and_pretraining_then_features(container, shared_dir):
    work = shared_dir("hubert")
    w = container.path(work, WORK)
    r = step(container, work, "python", "-c", "import fairseq, os; print(os.path.dirname(fairseq.__file__)); "
                                              "print(os.environ.get('FAIRSEQ_EXAMPLES'))")
    package, examples_env = r.stdout.split()
    if container.name != "local":  # the images point at the examples the way recipes expect
        assert examples_env == f"{package}/examples"
    kmeans = f"{package}/examples/hubert/simple_kmeans"

    spec = {f"u{i}.wav": 1.5 + 0.25 * i for i in range(8)}
    write_audio(work / "audio", spec)
    (work / "manifest").mkdir()
    for split, names in (("train", list(spec)[:6]), ("valid", list(spec)[6:])):
        (work / "manifest" / f"{split}.tsv").write_text(
            f"{w}/audio\n" + "".join(f"{n}\t{sf.info(work / 'audio' / n).frames}\n" for n in names))

    for split in ("train", "valid"):
        step(container, work, "python", f"{kmeans}/dump_mfcc_feature.py", f"{w}/manifest", split, "1", "0", f"{w}/feat")
    step(container, work, "python", f"{kmeans}/learn_kmeans.py", f"{w}/feat", "train", "1", f"{w}/km.bin", "10",
         "--percent", "-1", "--n_init", "3", "--max_iter", "20")
    for split in ("train", "valid"):
        step(container, work, "python", f"{kmeans}/dump_km_label.py", f"{w}/feat", split, f"{w}/km.bin", "1", "0",
             f"{w}/lab")
        (work / "lab" / f"{split}_0_1.km").rename(work / "lab" / f"{split}.km")
    labels = [line.split() for line in (work / "lab" / "train.km").read_text().splitlines()]
    lengths = [int(x) for x in (work / "feat" / "train_0_1.len").read_text().split()]
    assert [len(x) for x in labels] == lengths  # one label per 10 ms MFCC frame, per file
    assert {int(u) for x in labels for u in x} <= set(range(10))
    (work / "lab" / "dict.km.txt").write_text("".join(f"{i} 1\n" for i in range(10)))

    (work / "config").mkdir()
    (work / "config" / "tiny_hubert.yaml").write_text(TINY_HUBERT_CONFIG)
    r = step(container, work, "fairseq-hydra-train", "--config-dir", f"{w}/config", "--config-name", "tiny_hubert",
             f"task.data={w}/manifest", f"task.label_dir={w}/lab", f"checkpoint.save_dir={w}/ckpt",
             f"hydra.run.dir={w}/hydra")
    log = (work / "hydra" / "hydra_train.log").read_text()
    assert "num_updates: 4 >= max_update: 4" in log and "done training" in log
    assert (work / "hydra" / ".hydra" / "config.yaml").is_file()
    ckpt = work / "ckpt" / "checkpoint_last.pt"
    assert_written_by_the_image_user(container, [ckpt, work / "hydra" / "hydra_train.log", work / "km.bin"])

    step(container, work, None, "features", f"{w}/audio", "-o", f"{w}/units", "--model", f"{w}/ckpt/checkpoint_last.pt",
         "--layer", "2", "--no-progress")
    feats = {p.name: np.load(p) for p in (work / "units" / "features").glob("*.npy")}
    assert set(feats) == {n.replace(".wav", ".npy") for n in spec}
    for name, seconds in spec.items():
        f = feats[name.replace(".wav", ".npy")]
        assert f.shape[1] == 32 and abs(f.shape[0] - seconds * 50) <= 1 and np.isfinite(f).all()


def test_unit_lm_trained_in_the_image_then_continue(container, shared_dir):
    """GSLM's other half inside the image: fairseq-train a tiny unit LM, then `continue` from unit prompts,
    twice with one seed (the same units) and the prompt kept as each sequence's start."""
    work = shared_dir("ulm")
    w = container.path(work, WORK)
    rng = random.Random(0)
    lines = []
    for _ in range(200):
        start, step_ = rng.randrange(10), rng.choice([1, 2])
        lines.append(" ".join(str((start + j * step_) % 10) for j in range(rng.randint(8, 24))))
    (work / "train.txt").write_text("\n".join(lines[:180]) + "\n")
    (work / "valid.txt").write_text("\n".join(lines[180:]) + "\n")
    (work / "prompts.txt").write_text("1 2 3\n4 6 8 0\n")
    step(container, work, "fairseq-preprocess", "--only-source", "--trainpref", f"{w}/train.txt",
         "--validpref", f"{w}/valid.txt", "--destdir", f"{w}/lm", "--workers", "1")
    step(container, work, "fairseq-train", f"{w}/lm", "--task", "language_modeling", "--arch", "transformer_lm_big",
         "--decoder-layers", "1", "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32",
         "--decoder-attention-heads", "2", "--share-decoder-input-output-embed", "--sample-break-mode", "eos",
         "--tokens-per-sample", "64", "--max-tokens", "512", "--optimizer", "adam", "--lr", "0.005",
         "--max-update", "10", "--save-dir", f"{w}/lm", "--no-epoch-checkpoints", "--cpu", "--seed", "1",
         "--no-progress-bar")
    outputs = []
    for run in ("a", "b"):
        step(container, work, None, "continue", "--lm", f"{w}/lm", "--prompts", f"{w}/prompts.txt",
             "-o", f"{w}/out-{run}", "--seed", "5", "--max-len-b", "30", "--device", "cpu")
        outputs.append((work / f"out-{run}" / "continuations.jsonl").read_text())
    assert outputs[0] == outputs[1]
    records = [json.loads(x) for x in outputs[0].splitlines()]
    assert [r["units"][:len(r["prompt_units"])] for r in records] == [[1, 2, 3], [4, 6, 8, 0]]
    assert all(len(r["units"]) > len(r["prompt_units"]) for r in records)


def test_twist_speech_lm_continues_in_the_image(container, shared_dir):
    """TWIST's half inside the image: transformers (from the lock) saves a tiny OPT speech LM with TWIST's
    `offset`; `continue` loads it strictly and samples the same units twice with one seed."""
    work = shared_dir("twist")
    w = container.path(work, WORK)
    (work / "prompts.txt").write_text("1 2 3\n4 0 2 1\n")
    step(container, work, "python", "-c", "import sys; from textless_stack.testing.tiny_lms import make_twist; "
         "make_twist(sys.argv[1], 'opt', units=5, offset=4)", f"{w}/lm")
    outputs = []
    for run in ("a", "b"):
        step(container, work, None, "continue", "--lm", f"{w}/lm", "--prompts", f"{w}/prompts.txt",
             "-o", f"{w}/out-{run}", "--seed", "5", "--device", "cpu", "--no-progress")
        outputs.append((work / f"out-{run}" / "continuations.jsonl").read_text())
    assert outputs[0] == outputs[1]
    records = [json.loads(x) for x in outputs[0].splitlines()]
    assert [r["units"][:len(r["prompt_units"])] for r in records] == [[1, 2, 3], [4, 0, 2, 1]]
    assert [len(r["units"]) for r in records] == [9, 12] and all(0 <= u < 5 for r in records for u in r["units"])
