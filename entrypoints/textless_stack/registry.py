"""The model registry: every downloadable model this project knows, in one table.

Names, files and sha256 values are textlesslib's (ba33d669, textless/checkpoint_manager);
dense layers and hop sizes are textlesslib's DENSE_MODELS. A file whose name is in this
table is verified against its sha256 before any byte of it is unpickled. GSLM's unit LMs
(fairseq examples/textless_nlp/gslm/ulm) come without a published sha256: their digest is
recorded at the first download and every later use is verified against that record (store.py); so do
TWIST's speech LMs (examples/twist).
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
    kind: str                      # "dense" | "kmeans" | a vocoder part (see VOCODER_KINDS)
    layer: Optional[int] = None    # dense: the layer textlesslib reads features from
    hop: int = 320                 # dense: samples per frame at 16 kHz
    dense: Optional[str] = None    # kmeans: the dense model (and layer) it was trained on
    kmeans: Optional[str] = None   # ulm: the k-means whose units it models
    unsupported: str = ""          # why this image cannot use it yet


def _m(name, path, fname, sha256, kind, **kw) -> Model:
    return Model(name=name, url=_BASE + path, fname=fname, sha256=sha256, kind=kind, **kw)


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
        # positional convolution: BatchNorm + Conv1d (fairseq 4db26494), backported by env/patcher
        _m("mhubert-base-25hz", "textless_nlp/twist/speech_tokenizer/mhubert_base_25hz_cp_mls_cv_sp_fisher.pt",
           "mhubert_base_25hz_cp_mls_cv_sp_fisher.pt",
           "edf0f5be2581a568a236aeb2781a5607c5af25806e12f40f7f2391e861fe3cf0", "dense", layer=11, hop=640),
        # GSLM's CPC (textlesslib's CpcFeatureReader: 10 ms frames, features of the first `layer` LSTM layers)
        _m("cpc-big-ll6k", "textless_nlp/gslm/cpc/cpc_big_ll6kh_top_ctc.pt", "cpc_big_ll6kh_top_ctc.pt",
           "73155dad5d7c986fe7b7f548050060a8e9cc9a0ffd111a22932f38c3e617c5b8", "dense", layer=2, hop=160),
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
        _m("cpc-big-ll6k-kmeans-50", "textless_nlp/gslm/cpc/km50/km.bin", "cpc_big_ll6k_km50.pt",
           "c48be5717aebc08169aa5165d58267449b8c8568624a346bb9f4b26eac3b0240", "kmeans", dense="cpc-big-ll6k"),
        _m("cpc-big-ll6k-kmeans-100", "textless_nlp/gslm/cpc/km100/km.bin", "cpc_big_ll6k_km100.pt",
           "077b96e010b1e87be627ef2bef0f5e5cdaa1c01722aa363b2dc0bb6a638e8b26", "kmeans", dense="cpc-big-ll6k"),
        _m("cpc-big-ll6k-kmeans-200", "textless_nlp/gslm/cpc/km200/km.bin", "cpc_big_ll6k_km200.pt",
           "2d863d1c6f251d19e667998248c87642ecb5e3ffaa410e9ebfa64341db4f6de2", "kmeans", dense="cpc-big-ll6k"),
        _m("cpc-big-ll6k-kmeans-500", "textless_nlp/gslm/cpc/km500/km.bin", "cpc_big_ll6k_km500.pt",
           "35398f665dff06801a7bf1e595bc176711ed751d554e64d999dc42f1dd106561", "kmeans", dense="cpc-big-ll6k"),
        # vocoders (resynth): GSLM Tacotron2 + WaveGlow, Expresso/TWIST CodeHiFiGAN; a set is named
        # {k-means name}-tacotron|-hifigan, its parts add -codes/-config/-speakers/-styles
        _m("hubert-base-ls960-kmeans-50-tacotron",
           "textless_nlp/gslm/hubert/tts_km50/tts_checkpoint_best.pt",
           "hubert_base_ls960_kmeans_50_tacotron.pt",
           "335e881a897cfa3389804110de8ac3909159d4de395880fbf1d3167a9477451e", "tacotron"),
        _m("hubert-base-ls960-kmeans-100-tacotron",
           "textless_nlp/gslm/hubert/tts_km100/tts_checkpoint_best.pt",
           "hubert_base_ls960_kmeans_100_tacotron.pt",
           "b208f8d6433eb5524405aa29d2b5fdacddb63a182d9830b629232e63b3543e4d", "tacotron"),
        _m("hubert-base-ls960-kmeans-200-tacotron",
           "textless_nlp/gslm/hubert/tts_km200/tts_checkpoint_best.pt",
           "hubert_base_ls960_kmeans_200_tacotron.pt",
           "093f009935a4dadd692db85e859246e369cb17be3aecd22038fb70af4d5b0590", "tacotron"),
        _m("hubert-base-ls960-kmeans-50-tacotron-codes",
           "textless_nlp/gslm/hubert/tts_km50/code_dict",
           "hubert_base_ls960_kmeans_50_tacotron_codes.pt",
           "5f01dd57fd3b4044fac93aaac2589bf49e34cbe1dc0713254c0f339ba2123bce", "tacotron-codes"),
        _m("hubert-base-ls960-kmeans-100-tacotron-codes",
           "textless_nlp/gslm/hubert/tts_km100/code_dict",
           "hubert_base_ls960_kmeans_100_tacotron_codes.pt",
           "6d506216aa5bad159f167e2535293b4e5ec8e1073b64449d30b66b460ebf6da0", "tacotron-codes"),
        _m("hubert-base-ls960-kmeans-200-tacotron-codes",
           "textless_nlp/gslm/hubert/tts_km200/code_dict",
           "hubert_base_ls960_kmeans_200_tacotron_codes.pt",
           "ea01ba3592e27c871b63b32e37d6532234edf7eee7077bdcc094061ee72922e6", "tacotron-codes"),
        _m("cpc-big-ll6k-kmeans-50-tacotron", "textless_nlp/gslm/cpc/tts_km50/tts_checkpoint_best.pt",
           "cpc_big_ll6k_kmeans_50_tacotron.pt",
           "e80a46561d1ded73bbe6e7272fcd6b9943fb7607229040b06324f654b66396fd", "tacotron"),
        _m("cpc-big-ll6k-kmeans-50-tacotron-codes", "textless_nlp/gslm/cpc/tts_km50/code_dict",
           "cpc_big_ll6k_kmeans_50_tacotron_codes.pt",
           "5f01dd57fd3b4044fac93aaac2589bf49e34cbe1dc0713254c0f339ba2123bce", "tacotron-codes"),
        _m("cpc-big-ll6k-kmeans-100-tacotron", "textless_nlp/gslm/cpc/tts_km100/tts_checkpoint_best.pt",
           "cpc_big_ll6k_kmeans_100_tacotron.pt",
           "6cfe1ce4bbdfd0f531189f4013cefc9e1296aec62f8bc0172d68d088ab344a50", "tacotron"),
        _m("cpc-big-ll6k-kmeans-100-tacotron-codes", "textless_nlp/gslm/cpc/tts_km100/code_dict",
           "cpc_big_ll6k_kmeans_100_tacotron_codes.pt",
           "a343085a83c1acfc96a2bfecf5098b380e860cdbb832cbcbbb0bf1358bd7c932", "tacotron-codes"),
        _m("cpc-big-ll6k-kmeans-200-tacotron", "textless_nlp/gslm/cpc/tts_km200/tts_checkpoint_best.pt",
           "cpc_big_ll6k_kmeans_200_tacotron.pt",
           "5845b1c0a82d9176b9d8c33a32f098795c946077e741a9da2b665bafda17b7ff", "tacotron"),
        _m("cpc-big-ll6k-kmeans-200-tacotron-codes", "textless_nlp/gslm/cpc/tts_km200/code_dict",
           "cpc_big_ll6k_kmeans_200_tacotron_codes.pt",
           "48dae50f9f2d4561c4a84fa09ba748395808d7d3323b1d5754af71669117e2aa", "tacotron-codes"),
        _m("mhubert-base-25hz-kmeans-500-hifigan",
           "textless_nlp/twist/speech_tokenizer/hifigan_lj_mhubert_base_25hz.pt",
           "hifigan_lj_mhubert_base_25hz.pt",
           "d88224e95c501e2cd59a6e4014753169cfe060fb7ade3cc0da03c809fef73b79", "hifigan"),
        _m("mhubert-base-25hz-kmeans-500-hifigan-config",
           "textless_nlp/twist/speech_tokenizer/hifigan_lj_mhubert_base_25hz_config.json",
           "hifigan_lj_mhubert_base_25hz_config.json",
           "116dc39be4970cd393e562acd0a0ec70a86aaba7e9ca469b8b836cb3fe46afc7", "hifigan-config"),
        _m("hubert-base-ls960-layer-9-kmeans-500-hifigan",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500/generator.pt",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500_generator.pt",
           "d50f4704e961c29cb386924ef32cd0c3a4d1089a3f9be856f8a3b6dcfdd6147a", "hifigan"),
        _m("hubert-base-ls960-layer-9-kmeans-500-hifigan-config",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500/config.json",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500_config.json",
           "31e65ef5e100cb43de08f2c8d225496ace1ed87a49fcb8ee44bd6805f079b1f0", "hifigan-config"),
        _m("hubert-base-ls960-layer-9-kmeans-500-hifigan-speakers",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500/speakers.txt",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500_speakers.txt",
           "2efabb7a4ad786da34fe6fbe99c3906b7abd40b2e01c81b7efde76142ae3d552", "hifigan-speakers"),
        _m("hubert-base-ls960-layer-9-kmeans-500-hifigan-styles",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500/styles.txt",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km500_styles.txt",
           "a6f63206518448277c63c3a251ac13484784829cf2e1b0a23b0860dd32543520", "hifigan-styles"),
        _m("hubert-base-ls960-layer-9-kmeans-expresso-2000-hifigan",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso/generator.pt",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso_generator.pt",
           "b892fdcca889f4bc6d7f0a0f407ae5d01eca8aaa66b9be333ef33a1c50f2ef52", "hifigan"),
        _m("hubert-base-ls960-layer-9-kmeans-expresso-2000-hifigan-config",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso/config.json",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso_config.json",
           "73932563cedc43cd1dcddfab36ce3b2c3cb76eef3423d25d1fb536ce1ec513bb", "hifigan-config"),
        _m("hubert-base-ls960-layer-9-kmeans-expresso-2000-hifigan-speakers",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso/speakers.txt",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso_speakers.txt",
           "2efabb7a4ad786da34fe6fbe99c3906b7abd40b2e01c81b7efde76142ae3d552", "hifigan-speakers"),
        _m("hubert-base-ls960-layer-9-kmeans-expresso-2000-hifigan-styles",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso/styles.txt",
           "hifigan_expresso_lj_vctk_hubert_base_ls960_L9_km2000_expresso_styles.txt",
           "a6f63206518448277c63c3a251ac13484784829cf2e1b0a23b0860dd32543520", "hifigan-styles"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-2000-hifigan",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000/generator.pt",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_generator.pt",
           "0d160c97519d3ed644e2ec636581b79e56767d60325308849fbb389a494c1466", "hifigan"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-2000-hifigan-config",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000/config.json",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_config.json",
           "73932563cedc43cd1dcddfab36ce3b2c3cb76eef3423d25d1fb536ce1ec513bb", "hifigan-config"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-2000-hifigan-speakers",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000/speakers.txt",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_speakers.txt",
           "2efabb7a4ad786da34fe6fbe99c3906b7abd40b2e01c81b7efde76142ae3d552", "hifigan-speakers"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-2000-hifigan-styles",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000/styles.txt",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_styles.txt",
           "a6f63206518448277c63c3a251ac13484784829cf2e1b0a23b0860dd32543520", "hifigan-styles"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-expresso-2000-hifigan",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso/generator.pt",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso_generator.pt",
           "8d1585f20edd9b0982f80acbb387a892adf19e4aa719b8dea795c8fa96285cbc", "hifigan"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-expresso-2000-hifigan-config",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso/config.json",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso_config.json",
           "73932563cedc43cd1dcddfab36ce3b2c3cb76eef3423d25d1fb536ce1ec513bb", "hifigan-config"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-expresso-2000-hifigan-speakers",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso/speakers.txt",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso_speakers.txt",
           "2efabb7a4ad786da34fe6fbe99c3906b7abd40b2e01c81b7efde76142ae3d552", "hifigan-speakers"),
        _m("mhubert-base-vp_mls_cv_8lang-kmeans-expresso-2000-hifigan-styles",
           "textless_nlp/expresso/checkpoints/hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso/styles.txt",
           "hifigan_expresso_lj_vctk_mhubert_base_vp_mls_cv_8lang_it3_L12_km2000_expresso_styles.txt",
           "a6f63206518448277c63c3a251ac13484784829cf2e1b0a23b0860dd32543520", "hifigan-styles"),
        _m("waveglow",
           "textless_nlp/gslm/waveglow_256channels_standalone.pt",
           "waveglow_256channels_standalone.pt",
           "f383c7fd785502fc6a6bffd604fc14cb35d6155cdde30c53faaaeafa8a904dab", "waveglow"),
    ]
}

# GSLM's unit LMs (transformer_lm_big, fairseq --task language_modeling): a .tgz each, no published sha256.
_ULM_BASE = "textless_nlp/gslm/"
_NO_DENSE = ("its dense model, k-means and vocoder are not in textlesslib's registry, so its units cannot be "
             "made or spoken here")
for _kind, _prefix, _file, _kmeans in (
        ("hubert", "hubert", "hubert{k}_lm.tgz", "hubert-base-ls960-kmeans-{k}"),
        ("cpc", "cpc", "cpc{k}_lm.tgz", "cpc-big-ll6k-kmeans-{k}"),
        ("logmel", "logmel", "logmel{k}_lm.tgz", None),
        ("w2v2", "w2v2", "w2v2_{k}_lm.tgz", None)):
    for _k in (50, 100, 200):
        _fname = _file.format(k=_k)
        _name = (_kmeans.format(k=_k) if _kmeans else f"gslm-{_kind}-{_k}") + "-ulm"
        MODELS[_name] = Model(name=_name, url=f"{_BASE}{_ULM_BASE}{_prefix}/lm_km{_k}/{_fname}", fname=_fname,
                              sha256="", kind="ulm", kmeans=_kmeans.format(k=_k) if _kmeans else None,
                              unsupported="" if _kmeans else _NO_DENSE)

# TWIST's speech LMs (textlesslib examples/twist): Hugging Face causal LMs over mHuBERT-25Hz units, a .zip each,
# no published sha256 (recorded at the first download, as for GSLM's ULMs).
for _size in ("350M", "1.3B", "7B"):
    _name = f"twist-{_size.lower()}"
    MODELS[_name] = Model(name=_name, url=f"{_BASE}textless_nlp/twist/lms/TWIST-{_size}.zip",
                          fname=f"TWIST-{_size}.zip", sha256="", kind="ulm", kmeans="mhubert-base-25hz-kmeans-500")

# Upstream file names are not unique across names (layer-9 aliases one file), but each maps to one hash.
_BY_FNAME: dict[str, Model] = {}
for _model in MODELS.values():
    _BY_FNAME.setdefault(_model.fname, _model)


def by_fname(fname: str) -> Optional[Model]:
    return _BY_FNAME.get(fname)


VOCODER_KINDS = ("tacotron", "tacotron-codes", "waveglow", "hifigan", "hifigan-config", "hifigan-speakers",
                 "hifigan-styles")


def vocoder_kmeans(name: str) -> str:
    """A vocoder set is named {k-means name}-tacotron|-hifigan: the units it was trained on."""
    return name.rsplit("-", 1)[0]
