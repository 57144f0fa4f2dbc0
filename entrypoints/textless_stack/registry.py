"""The model registry: every downloadable model this project knows, in one table.

Names, files and sha256 values are textlesslib's (ba33d669, textless/checkpoint_manager);
dense layers and hop sizes are textlesslib's DENSE_MODELS. A file whose name is in this
table is verified against its sha256 before any byte of it is unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

_BASE = "https://dl.fbaipublicfiles.com/"


@dataclass(frozen=True)
class Model:
    name: str
    url: str
    fname: str
    sha256: str
    kind: str                      # "dense" | "kmeans"
    layer: Optional[int] = None    # dense: the layer textlesslib reads features from
    hop: int = 320                 # dense: samples per frame at 16 kHz
    dense: Optional[str] = None    # kmeans: the dense model (and layer) it was trained on
    unsupported: str = ""          # why this fairseq cannot load it, if it cannot


def _m(name, path, fname, sha256, kind, **kw) -> Model:
    return Model(name=name, url=_BASE + path, fname=fname, sha256=sha256, kind=kind, **kw)


_NEEDS_NEWER_FAIRSEQ = (
    "its positional convolution is BatchNorm + Conv1d (conv_pos_batch_norm), added in fairseq "
    "4db26494 (2023-08); fairseq dd106d9 cannot represent it"
)

MODELS = {
    m.name: m
    for m in [
        _m("hubert-base-ls960", "hubert/hubert_base_ls960.pt", "hubert_base_ls960.pt",
           "1703cf8d2cdc76f8c046f5f6a9bcd224e0e6caf4744cad1a1f4199c32cac8c8d", "dense", layer=6),
        _m("hubert-base-ls960-layer-9", "hubert/hubert_base_ls960.pt", "hubert_base_ls960.pt",
           "1703cf8d2cdc76f8c046f5f6a9bcd224e0e6caf4744cad1a1f4199c32cac8c8d", "dense", layer=9),
        _m("mhubert-base-vp_en_es_fr", "hubert/mhubert_base_vp_en_es_fr_it3.pt", "mhubert_base_vp_en_es_fr_it3.pt",
           "23527cd6311a6617bfa199f574e2eed478cd6a58a634f4007165c10ec0019832", "dense", layer=11),
        _m("mhubert-base-vp_mls_cv_8lang", "hubert/mhubert_base_vp_mls_cv_8lang_it3.pt",
           "mhubert_base_vp_mls_cv_8lang_it3.pt",
           "fa82eaccb557465f4732662e3a744c30c953059147ac6a4c92f1f3e0daeda61e", "dense", layer=12),
        _m("mhubert-base-25hz", "textless_nlp/twist/speech_tokenizer/mhubert_base_25hz_cp_mls_cv_sp_fisher.pt",
           "mhubert_base_25hz_cp_mls_cv_sp_fisher.pt",
           "edf0f5be2581a568a236aeb2781a5607c5af25806e12f40f7f2391e861fe3cf0", "dense", layer=11, hop=640,
           unsupported=_NEEDS_NEWER_FAIRSEQ),
        # k-means quantizers (joblib-pickled sklearn models)
        _m("hubert-base-ls960-kmeans-50", "textless_nlp/gslm/hubert/km50/km.bin", "hubert_base_ls960_km50.pt",
           "d01a7d5bc2c54b7b5f25f321ba525b4d230b06e3927f90bad0394198bc89f494", "kmeans", dense="hubert-base-ls960"),
        _m("hubert-base-ls960-kmeans-100", "textless_nlp/gslm/hubert/km100/km.bin", "hubert_base_ls960_km100.pt",
           "f14a3104615485381fc489701d6761c9abbdbb0d43607cf55518a1e2891023fe", "kmeans", dense="hubert-base-ls960"),
        _m("hubert-base-ls960-kmeans-200", "textless_nlp/gslm/hubert/km200/km.bin", "hubert_base_ls960_km200.pt",
           "b3c46c9cdd1707ad852dd53c359aa73942e79d53c432a9a8a419ed046408024b", "kmeans", dense="hubert-base-ls960"),
        _m("hubert-base-ls960-kmeans-500", "textless_nlp/gslm/hubert/km500/km.bin", "hubert_base_ls960_km500.pt",
           "411c8668e1314751404f58636f935fc73540a6793890435da4a8ffadf157398e", "kmeans", dense="hubert-base-ls960"),
        _m("hubert-base-ls960-layer-9-kmeans-500", "hubert/hubert_base_ls960_L9_km500.bin",
           "hubert_base_ls960_L9_km500.pt",
           "4450dcbc90aa7d0553306a4b0fafef35c9b3c840468f02969273dfbb9db89a23", "kmeans",
           dense="hubert-base-ls960-layer-9"),
        _m("hubert-base-ls960-layer-9-kmeans-expresso-2000",
           "textless_nlp/expresso/checkpoints/hubert_base_ls960_L9_km2000_expresso.bin",
           "hubert_base_ls960_L9_km2000_expresso.pt",
           "ae73e3cc7ea0426faf43c8bb67fc3846a0f8708232526d045a101836e8c7929f", "kmeans",
           dense="hubert-base-ls960-layer-9"),
        _m("mhubert-base-vp_en_es_fr-layer-11-kmeans-1000", "hubert/mhubert_base_vp_en_es_fr_it3_L11_km1000.bin",
           "mhubert_base_vp_en_es_fr_it3_L11_km1000.bin",
           "c70f5416c38044d0c20e33fdeedf4533974a8ac4029985cdef3b755038381a0b", "kmeans",
           dense="mhubert-base-vp_en_es_fr"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-2000", "hubert/mhubert_base_vp_mls_cv_8lang_it3_L12_km2000.bin",
           "mhubert_base_vp_mls_cv_8lang_it3_L12_km2000.pt",
           "05de230870427dcdce334d29922ccce354c7e7d0574edc645f5daed47b1ccc18", "kmeans",
           dense="mhubert-base-vp_mls_cv_8lang"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-expresso-2000",
           "textless_nlp/expresso/checkpoints/mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso.bin",
           "mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso.pt",
           "bda2dbf5fe42bf59359799b281498a9d7fd0a9ec703d6dc54a4a4a0ff70a4e22", "kmeans",
           dense="mhubert-base-vp_mls_cv_8lang"),
        _m("mhubert-base-25hz-kmeans-500",
           "textless_nlp/twist/speech_tokenizer/mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin",
           "mhubert_base_25hz_cp_mls_cv_sp_fisher_L11_km500.bin",
           "03cc04a9c24fec4285e73e709c485756d8f116aa8e724eac555de6a7cf8d28ad", "kmeans", dense="mhubert-base-25hz"),
    ]
}

# Upstream file names are not unique across names (layer-9 aliases one file), but each maps to one hash.
_BY_FNAME: dict[str, Model] = {}
for _model in MODELS.values():
    _BY_FNAME.setdefault(_model.fname, _model)


def by_fname(fname: str) -> Optional[Model]:
    return _BY_FNAME.get(fname)
