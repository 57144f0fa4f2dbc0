"""textlesslib at ba33d669 (setup.py says 0.1.0)."""

from __future__ import annotations

import re
from pathlib import Path

from .common import MARK, import_policy, route_torch_load
from .engine import Project, Transform, UnknownFlavour

BA33D669 = "0.1.0"
ONE = {BA33D669: 1}


def detect(root: Path) -> str:
    setup = root / "setup.py"
    m = re.search(r'version="([^"]+)"', setup.read_text()) if setup.is_file() else None
    if not m or m.group(1) != BA33D669 or not (root / "textless").is_dir():
        raise UnknownFlavour(f"{root}: not a textlesslib {BA33D669} source tree")
    return BA33D669


# file -> torch.load calls in it
_TORCH_LOADS = {
    "textless/data/cpc_feature_reader.py": 1,
    "textless/data/f0_preprocess.py": 2,
    "textless/vocoders/tacotron2/__init__.py": 2,
    "textless/vocoders/tacotron2/vocoder.py": 2,
    "textless/vocoders/hifigan/vocoder.py": 1,
}

TRANSFORMS = [
    t
    for path, n in _TORCH_LOADS.items()
    for t in (
        route_torch_load(f"torch-load-policy:{path}", path, {BA33D669: n}),
        import_policy(f"torch-load-import:{path}", path, ONE),
    )
] + [
    # librosa >= 0.10 made these keyword-only; keyword calls work on 0.9.2 too
    Transform(
        name="librosa-mel-keywords",
        path="textless/vocoders/tacotron2/layers.py",
        find="        mel_basis = librosa_mel_fn(\n            sampling_rate, filter_length, n_mel_channels, mel_fmin, mel_fmax)\n",
        replace=(
            "        mel_basis = librosa_mel_fn(  " + MARK + " keyword-only in librosa >= 0.10\n"
            "            sr=sampling_rate, n_fft=filter_length, n_mels=n_mel_channels, fmin=mel_fmin, fmax=mel_fmax)\n"
        ),
        count=ONE,
    ),
    Transform(
        name="librosa-pad-center-stft",
        path="textless/vocoders/tacotron2/stft.py",
        find="pad_center(fft_window, filter_length)",
        replace="pad_center(fft_window, size=filter_length)",
        count=ONE,
    ),
    Transform(
        name="librosa-pad-center-window-sumsquare",
        path="textless/vocoders/tacotron2/audio_processing.py",
        find="librosa_util.pad_center(win_sq, n_fft)",
        replace="librosa_util.pad_center(win_sq, size=n_fft)",
        count=ONE,
    ),
    Transform(
        name="librosa-resample-keywords",
        path="textless/vocoders/tacotron2/utils.py",
        find="librosa.resample(data, ori_sr, tar_sr)",
        replace="librosa.resample(data, orig_sr=ori_sr, target_sr=tar_sr)",
        count=ONE,
    ),
    # --- Tacotron2 + WaveGlow: CUDA-only as written; device-agnostic, fp16 only on CUDA -------
    Transform(
        name="tacotron-mask-on-lengths-device",
        path="textless/vocoders/tacotron2/utils.py",
        find="    ids = torch.arange(0, max_len, out=torch.cuda.LongTensor(max_len))\n",
        replace="    ids = torch.arange(0, max_len, device=lengths.device)  " + MARK + " was torch.cuda.LongTensor\n",
        count=ONE,
        why="Tacotron2.inference builds its masks with a CUDA tensor: CPU inference failed",
    ),
    Transform(
        name="waveglow-inverse-half-by-dtype",
        path="textless/vocoders/tacotron2/glow.py",
        find="                if z.type() == 'torch.cuda.HalfTensor':\n",
        replace="                if z.dtype == torch.float16:  " + MARK + " any device\n",
        count=ONE,
    ),
    Transform(
        name="waveglow-noise-like-spect",
        path="textless/vocoders/tacotron2/glow.py",
        find=(
            "        if spect.type() == 'torch.FloatTensor':\n"
            "            audio = torch.FloatTensor(spect.size(0),\n"
            "                                      self.n_remaining_channels,\n"
            "                                      spect.size(2)).normal_()\n"
            "        elif spect.type() == 'torch.cuda.HalfTensor':\n"
            "            audio = torch.cuda.HalfTensor(spect.size(0),\n"
            "                                          self.n_remaining_channels,\n"
            "                                          spect.size(2)).normal_()\n"
            "        else:\n"
            "            audio = torch.cuda.FloatTensor(spect.size(0),\n"
            "                                           self.n_remaining_channels,\n"
            "                                           spect.size(2)).normal_()\n"
        ),
        replace=(
            "        audio = torch.randn(spect.size(0), self.n_remaining_channels, spect.size(2),  " + MARK + " any device\n"
            "                            dtype=spect.dtype, device=spect.device)\n"
        ),
        count=ONE,
        why="the noise tensor's type was picked from three CPU/CUDA tensor classes; CPU half fell into CUDA",
    ),
    Transform(
        name="waveglow-early-noise-like-spect",
        path="textless/vocoders/tacotron2/glow.py",
        find=(
            "                if spect.type() == 'torch.FloatTensor':\n"
            "                    z = torch.FloatTensor(spect.size(0), self.n_early_size, spect.size(2)).normal_()\n"
            "                elif spect.type() == 'torch.cuda.HalfTensor':\n"
            "                    z = torch.cuda.HalfTensor(spect.size(0), self.n_early_size, spect.size(2)).normal_()\n"
            "                else:\n"
            "                    z = torch.cuda.FloatTensor(spect.size(0), self.n_early_size, spect.size(2)).normal_()\n"
        ),
        replace=(
            "                z = torch.randn(spect.size(0), self.n_early_size, spect.size(2),  " + MARK + " any device\n"
            "                                dtype=spect.dtype, device=spect.device)\n"
        ),
        count=ONE,
    ),
    Transform(
        name="denoiser-on-its-own-device",
        path="textless/vocoders/tacotron2/waveglow_denoiser.py",
        find="        audio_spec, audio_angles = self.stft.transform(audio.cuda().float())\n",
        replace="        audio_spec, audio_angles = self.stft.transform(audio.to(self.bias_spec.device).float())  " + MARK + " any device\n",
        count=ONE,
    ),
    Transform(
        name="tacotron-vocoder-half-only-on-cuda",
        path="textless/vocoders/tacotron2/vocoder.py",
        find="    model = model.half()\n",
        replace="    model = model.half() if torch.cuda.is_available() else model  " + MARK + " fp16 only on CUDA\n",
        count=ONE,
    ),
    Transform(
        name="tacotron-vocoder-denoise-half-only-on-cuda",
        path="textless/vocoders/tacotron2/vocoder.py",
        find="        aud_dn = denoiser(aud.half(), strength=strength).squeeze(1)\n",
        replace="        aud_dn = denoiser(aud.half() if aud.is_cuda else aud, strength=strength).squeeze(1)  " + MARK + " fp16 only on CUDA\n",
        count=ONE,
    ),
    Transform(
        name="tacotron-legacy-waveglow-device",
        path="textless/vocoders/tacotron2/__init__.py",
        find="    waveglow = waveglow.cuda().eval()\n",
        replace="    waveglow = waveglow.to(\"cuda\" if torch.cuda.is_available() else \"cpu\").eval()  " + MARK + " any device\n",
        count=ONE,
    ),
    Transform(
        name="tacotron-legacy-model-device",
        path="textless/vocoders/tacotron2/__init__.py",
        find="    model = model.cuda().eval().half()\n",
        replace="    model = model.cuda().eval().half() if torch.cuda.is_available() else model.eval()  " + MARK + " fp16 only on CUDA\n",
        count=ONE,
    ),
    Transform(
        name="tacotron-legacy-tokens-device",
        path="textless/vocoders/tacotron2/__init__.py",
        find="    tokens = tts_dataset.get_tensor(quantized_units_str).cuda().unsqueeze(0)\n",
        replace="    tokens = tts_dataset.get_tensor(quantized_units_str).to(next(model.parameters()).device).unsqueeze(0)  " + MARK + " any device\n",
        count=ONE,
    ),
    Transform(
        name="tacotron-legacy-label-device",
        path="textless/vocoders/tacotron2/__init__.py",
        find="        lab = torch.LongTensor(1).cuda().fill_(lab)\n",
        replace="        lab = torch.LongTensor(1).fill_(lab).to(next(model.parameters()).device)  " + MARK + " any device\n",
        count=ONE,
    ),
    # nothing written at import: the root is created when a checkpoint is downloaded
    Transform(
        name="checkpoint-root-lazy",
        path="textless/checkpoint_manager/manager.py",
        find=(
            "        if not self.disk_root.exists():\n"
            "            self.disk_root.mkdir()\n"
        ),
        replace="        " + MARK + " created lazily (with parents) by download_by_name\n",
        count=ONE,
        why="importing textless must not write to HOME (read-only SIF, --containall)",
    ),
    Transform(
        name="checkpoint-root-mkdir-on-download",
        path="textless/checkpoint_manager/manager.py",
        find="        checkpoint = self.storage[name]\n        download_url_to_file(\n",
        replace=(
            "        checkpoint = self.storage[name]\n"
            "        self.disk_root.mkdir(parents=True, exist_ok=True)  " + MARK + " lazy root\n"
            "        download_url_to_file(\n"
        ),
        count=ONE,
    ),
    Transform(
        name="dispatch-vocoder-tacotron",
        path="textless/__init__.py",
        find='    if vocoder_name == "hifigan":\n',
        replace='    elif vocoder_name == "hifigan":  ' + MARK + " tacotron fell through to assert False\n",
        count=ONE,
    ),
    # textless/vocoders has no __init__.py: find_packages() leaves every vocoder out of a wheel
    Transform(
        name="setup-namespace-packages",
        path="setup.py",
        find="    packages=find_packages(),\n",
        replace='    packages=find_namespace_packages(include=["textless", "textless.*"]),  ' + MARK + " textless/vocoders has no __init__.py\n",
        count=ONE,
    ),
    Transform(
        name="setup-import-namespace-packages",
        path="setup.py",
        find="from setuptools import find_packages, setup\n",
        replace="from setuptools import find_namespace_packages, setup  " + MARK + " see packages=\n",
        count=ONE,
    ),
    # textlesslib's own pins (numba 0.53 has no Python 3.10 wheel) give way to env/pins.toml;
    # it also imports soundfile and scipy without declaring them
    Transform(
        name="requirements-unpin",
        path="requirements.txt",
        find=r"^(threadpoolctl|numpy|numba)==[0-9.]+$",
        replace=r"\1",
        done=r"^(threadpoolctl|numpy|numba)$",
        regex=True,
        example="numba==0.53.0\n",
        count={BA33D669: 3},
    ),
    Transform(
        name="requirements-runtime-not-pytest",
        path="requirements.txt",
        find="pytest\n",
        replace="soundfile\nscipy\n",
        done=r"^soundfile\nscipy$",
        count=ONE,
    ),
]

PROJECT = Project(name="textlesslib", detect=detect, transforms=TRANSFORMS)
