"""fairseq: dd106d9 (the pinned commit) and the 0.12.2 sdist (the CI stand-in)."""

from __future__ import annotations

from pathlib import Path

from .common import MARK, dataclass_defaults, import_policy, route_torch_load
from .engine import Project, Transform, UnknownFlavour

DD106D9 = "dd106d9"
V0122 = "0.12.2"
BOTH = (DD106D9, V0122)

# fairseq/version.txt identifies the tree; each flavour's counts below were read off it.
_VERSION_TXT = {"1.0.0a0": DD106D9, "0.12.2": V0122}


def detect(root: Path) -> str:
    version_file = root / "fairseq" / "version.txt"
    if not version_file.is_file():
        raise UnknownFlavour(f"{root}: no fairseq/version.txt; is this a fairseq source tree?")
    version = version_file.read_text().strip()
    if version not in _VERSION_TXT:
        raise UnknownFlavour(f"{root}: fairseq version {version!r} is not one the patch table knows ({sorted(_VERSION_TXT)})")
    return _VERSION_TXT[version]


def both(n_dd: int, n_012: int | None = None) -> dict:
    return {DD106D9: n_dd, V0122: n_dd if n_012 is None else n_012}


TRANSFORMS = [
    # --- Python >= 3.11: dataclass instances as defaults -------------------------------
    dataclass_defaults("fairseq-config-defaults", "fairseq/dataclass/configs.py", both(10, 11)),
    Transform(
        name="hydra-init-default-factory",
        path="fairseq/dataclass/initialize.py",
        find="        v = FairseqConfig.__dataclass_fields__[k].default\n",
        replace=(
            "        f = FairseqConfig.__dataclass_fields__[k]  " + MARK + " py311-dataclass\n"
            "        v = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()\n"
        ),
        count=both(1),
        why="fields now use default_factory; .default is MISSING for them",
    ),
    Transform(
        name="hydra-init-schema-by-name",
        path="fairseq/dataclass/initialize.py",
        find='    cs.store(name=f"{cfg_name}_schema", node=FairseqConfig)\n',
        replace=(
            '    cs.store(name=f"{cfg_name}_schema", node=FairseqConfig)\n'
            "    cs.store(name=cfg_name, node=FairseqConfig)  " + MARK + " recipe configs merge it by name\n"
        ),
        done=r"^    cs\.store\(name=cfg_name, node=FairseqConfig\)",
        count={DD106D9: 1},
        why="fairseq 9bee82e4 (2021-07) made the schema explicit (config_schema), but the example recipes "
            "(hubert/config/pretrain, wav2vec) do not list it: fairseq-hydra-train failed with "
            "\"str interpolation key 'common.tpu' not found\" (fairseq#3689). Hydra 1.0 merges a stored "
            "node with the primary config of the same name, as fairseq did before and 0.12.2 does again.",
    ),
    Transform(
        name="hydra-init-import-dataclasses",
        path="fairseq/dataclass/initialize.py",
        find="import logging\n",
        replace="import dataclasses  " + MARK + " py311-dataclass\nimport logging\n",
        count=both(1),
    ),
    dataclass_defaults("transformer-config-defaults", "fairseq/models/transformer/transformer_config.py", {V0122: 2}),
    Transform(
        name="transformer-config-quant-noise",
        path="fairseq/models/transformer/transformer_config.py",
        find="    quant_noise: QuantNoiseConfig = field(default=QuantNoiseConfig())\n",
        replace="    quant_noise: QuantNoiseConfig = field(default_factory=QuantNoiseConfig)  " + MARK + " py311-dataclass\n",
        count={V0122: 1},
    ),
    dataclass_defaults("example-asr-infer-defaults", "examples/speech_recognition/new/infer.py", both(6)),
    dataclass_defaults("example-w2vu-generate-defaults", "examples/wav2vec/unsupervised/w2vu_generate.py", both(1)),
    dataclass_defaults("example-w2vu-task-defaults", "examples/wav2vec/unsupervised/tasks/unpaired_audio_text.py", both(1)),
    dataclass_defaults("example-data2vec-text-defaults", "examples/data2vec/models/data2vec_text.py", {V0122: 1}),
    Transform(
        name="example-w2vu-model-defaults",
        path="examples/wav2vec/unsupervised/models/wav2vec_u.py",
        find="    segmentation: SegmentationConfig = SegmentationConfig()\n",
        replace="    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)  " + MARK + " py311-dataclass\n",
        count=both(1),
    ),
    Transform(
        name="example-w2vu-model-import-field",
        path="examples/wav2vec/unsupervised/models/wav2vec_u.py",
        find="from dataclasses import dataclass\n",
        replace="from dataclasses import dataclass, field  " + MARK + " py311-dataclass\n",
        count=both(1),
    ),
    # --- torch >= 2.6: explicit about weights_only -------------------------------------
    Transform(
        name="checkpoint-load-policy",
        path="fairseq/checkpoint_utils.py",
        find=r'^(?P<i>[ \t]+)state = torch\.load\(f, map_location=torch\.device\("cpu"\)\)$',
        replace=(
            r"\g<i>from textless_stack.checkpoint_policy import torch_load  " + MARK + " weights_only policy\n"
            r'\g<i>state = torch_load(f, map_location=torch.device("cpu"))'
        ),
        done=r'^[ \t]+state = torch_load\(f, map_location=torch\.device\("cpu"\)\)$',
        regex=True,
        count=both(1),
        why="torch >= 2.6 refuses fairseq checkpoints by default; the policy allowlists what they contain",
        example='        state = torch.load(f, map_location=torch.device("cpu"))\n',
    ),
    Transform(
        name="ema-load-policy",
        path="fairseq/checkpoint_utils.py",
        find="        new_state = torch.load(\n",
        replace=(
            "        from textless_stack.checkpoint_policy import torch_load  " + MARK + " weights_only policy\n"
            "        new_state = torch_load(\n"
        ),
        count={V0122: 1},
    ),
    Transform(
        name="broadcast-object-weights-only",
        path="fairseq/distributed/utils.py",
        find='        obj = torch.load(buffer, map_location="cpu")\n',
        replace=(
            '        obj = torch.load(buffer, map_location="cpu", weights_only=False)  '
            + MARK + " objects sent by our own ranks, not a file\n"
        ),
        count=both(1),
    ),
    # --- numpy >= 1.24 removed the builtin aliases --------------------------------------
    Transform(
        name="numpy-float-alias-indexed-dataset",
        path="fairseq/data/indexed_dataset.py",
        find=r"\bnp\.float\b(?!\d|_)",
        replace="float",
        done=r"^[ \t]+(6: float|float: 4),$",
        regex=True,
        count={DD106D9: 2},
        why="np.float was the builtin float; runs at import time",
        example="    6: np.float,\n",
    ),
    Transform(
        name="numpy-int-alias-compute-mask",
        path="fairseq/data/data_utils.py",
        find="                    np.int,\n",
        replace="                    np.int64,  " + MARK + " np.int removed in numpy 1.24\n",
        count=both(1),
    ),
    Transform(
        name="numpy-float-alias-crf",
        path="fairseq/modules/dynamic_crf_layer.py",
        find='np.float("inf"))\n',
        replace='float("inf"))  ' + MARK + " np.float removed in numpy 1.24\n",
        count=both(1),
    ),
    Transform(
        name="numpy-compat-long-token-block",
        path="fairseq/data/token_block_dataset.py",
        find="dtype=np.compat.long\n",
        replace="dtype=np.int64  " + MARK + " np.compat removed in numpy 2\n",
        count=both(1),
        why="np.compat is gone in numpy 2",
    ),
    Transform(
        name="numpy-compat-long-language-pair",
        path="fairseq/data/language_pair_dataset.py",
        find="otypes=[np.compat.long])\n",
        replace="otypes=[np.int64])  " + MARK + " np.compat removed in numpy 2\n",
        count=both(1),
    ),
    # --- torch >= 2: the 0.12.2 BetterTransformer fast path calls a private op whose -------
    # signature changed (fairseq-generate: "Mask Type should be defined"); the plain path is exact
    Transform(
        name="bettertransformer-layer-off",
        path="fairseq/modules/transformer_layer.py",
        find="            self.BT_version\n            and x.dim() == 3\n",
        replace="            False  " + MARK + " private torch fast-path API changed\n"
                "            and self.BT_version\n            and x.dim() == 3\n",
        count={V0122: 1},
        why="torch._transformer_encoder_layer_fwd takes other arguments in torch >= 2",
    ),
    Transform(
        name="bettertransformer-encoder-off",
        path="fairseq/models/transformer/transformer_encoder.py",
        find="            BT_version\n            and x.dim() == 3\n",
        replace="            False  " + MARK + " private torch fast-path API changed\n"
                "            and BT_version\n            and x.dim() == 3\n",
        count={V0122: 1},
    ),
    # --- HuBERT label_rate: float in checkpoints written by newer fairseq ----------------
    Transform(
        name="hubert-model-label-rate-float",
        path="fairseq/models/hubert/hubert.py",
        find='    label_rate: int = II("task.label_rate")\n',
        replace='    label_rate: float = II("task.label_rate")  ' + MARK + " newer checkpoints store 50.0\n",
        count={DD106D9: 1},
    ),
    Transform(
        name="hubert-task-label-rate-float",
        path="fairseq/tasks/hubert_pretraining.py",
        find="    label_rate: int = field(\n",
        replace="    label_rate: float = field(  " + MARK + " newer checkpoints store 50.0\n",
        count={DD106D9: 1},
    ),
    Transform(
        name="hubert-dataset-label-rate-float",
        path="fairseq/data/audio/hubert_dataset.py",
        find="            if isinstance(label_rates, int)\n",
        replace="            if isinstance(label_rates, (int, float))  " + MARK + " label_rate may be float\n",
        count={DD106D9: 1},
    ),
    # --- conv_pos_batch_norm (mhubert-base-25hz): backport of fairseq 4db26494 (2023-08) ------------
    # The positional convolution becomes Sequential(BatchNorm1d, Conv1d, SamePad, GELU), no weight norm.
    # HubertConfig gets the field (default off: every other checkpoint builds exactly as before);
    # Wav2Vec2Config does not, as upstream (the encoder reads it with a default).
    Transform(
        name="hubert-config-conv-pos-batch-norm",
        path="fairseq/models/hubert/hubert.py",
        find="    latent_temp: Tuple[float, float, float] = field(\n",
        replace=(
            "    conv_pos_batch_norm: bool = field(  " + MARK + " backport of fairseq 4db26494\n"
            "        default=False,\n"
            '        metadata={"help": "use batch norm instead of weight norm in conv_pos (for bf16 models)"},\n'
            "    )\n"
            "\n"
            "    latent_temp: Tuple[float, float, float] = field(\n"
        ),
        done=r"^    conv_pos_batch_norm: bool = field\(",
        count=both(1),
        why="mhubert-base-25hz (TWIST, SpiritLM) sets it; without the field the loader would have to drop it",
    ),
    Transform(
        name="pos-conv-batch-norm-inline",
        path="fairseq/models/wav2vec/wav2vec2.py",
        find=(
            '        self.pos_conv = nn.utils.weight_norm(self.pos_conv, name="weight", dim=2)\n'
            "        self.pos_conv = nn.Sequential(self.pos_conv, SamePad(args.conv_pos), nn.GELU())\n"
        ),
        replace=(
            '        if getattr(args, "conv_pos_batch_norm", False):  ' + MARK + " backport of fairseq 4db26494\n"
            "            self.pos_conv = nn.Sequential(\n"
            "                nn.BatchNorm1d(self.embedding_dim), self.pos_conv, SamePad(args.conv_pos), nn.GELU()\n"
            "            )\n"
            "        else:\n"
            '            self.pos_conv = nn.utils.weight_norm(self.pos_conv, name="weight", dim=2)\n'
            "            self.pos_conv = nn.Sequential(self.pos_conv, SamePad(args.conv_pos), nn.GELU())\n"
        ),
        done=r'^        if getattr\(args, "conv_pos_batch_norm", False\):',
        count={DD106D9: 1},
        why="dd106d9 builds the positional conv inline in TransformerEncoder.__init__",
    ),
    Transform(
        name="make-conv-pos-batch-norm-signature",
        path="fairseq/models/wav2vec/wav2vec2.py",
        find="def make_conv_pos(e, k, g):\n",
        replace="def make_conv_pos(e, k, g, is_batch_norm=False):  " + MARK + " backport of fairseq 4db26494\n",
        count={V0122: 1},
    ),
    Transform(
        name="make-conv-pos-batch-norm",
        path="fairseq/models/wav2vec/wav2vec2.py",
        find=(
            '    pos_conv = nn.utils.weight_norm(pos_conv, name="weight", dim=2)\n'
            "    pos_conv = nn.Sequential(pos_conv, SamePad(k), nn.GELU())\n"
        ),
        replace=(
            "    if is_batch_norm:  " + MARK + " backport of fairseq 4db26494\n"
            "        pos_conv = nn.Sequential(nn.BatchNorm1d(e), pos_conv, SamePad(k), nn.GELU())\n"
            "    else:\n"
            '        pos_conv = nn.utils.weight_norm(pos_conv, name="weight", dim=2)\n'
            "        pos_conv = nn.Sequential(pos_conv, SamePad(k), nn.GELU())\n"
        ),
        done=r"^    if is_batch_norm:  ",
        count={V0122: 1},
    ),
    Transform(
        name="make-conv-pos-batch-norm-call",
        path="fairseq/models/wav2vec/wav2vec2.py",
        find="                args.conv_pos_groups,\n            )\n",
        replace=(
            "                args.conv_pos_groups,\n"
            '                is_batch_norm=getattr(args, "conv_pos_batch_norm", False),  '
            + MARK + " backport of fairseq 4db26494\n"
            "            )\n"
        ),
        done=r'^                is_batch_norm=getattr\(args, "conv_pos_batch_norm", False\),',
        count={V0122: 1},
    ),
]

PROJECT = Project(
    name="fairseq",
    detect=detect,
    transforms=TRANSFORMS,
    # the sdist ships examples/ inside the package
    relocate={V0122: {"examples/": "fairseq/examples/"}},
)
