#!/usr/bin/env python3
"""GPU code paths against the CPU, on a machine with a CUDA device (CI has none).

usage: python benchmarks/gpu_check.py BUNDLE CATEGORY OUT.json [DEVICE]   (DEVICE: cuda; cpu to try the script)

BUNDLE: an image bundle with a patch memory; CATEGORY: its MVTec-layout folder. Checks, printing
figures: image scores and maps on the GPU (bf16 network passes, float32 distances) against the
CPU's; GPU time per 128 px image; the patch memory fitted on the GPU; a short image training run
on the GPU end to end (train_images: network, statistics, memory, held-out calibration); the
audio scorer on the GPU against the CPU on the demo recording.

On the lent H100/H200 image (Python 3.12 with torch, torchaudio, safetensors, scikit-learn, scipy,
scikit-image), carry cp312 manylinux wheels of what it lacks: pydantic, pydantic-core,
annotated-types, typing-inspection, structlog, PyWavelets, ptwt, soundfile, cffi, pycparser,
pyzmq, soxr (see the device tool's README for `pip download` and `--target` install).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import sentinel
    from sentinel.audio import load_audio
    from sentinel.bundle import load_bundle
    from sentinel.diffusion.schedulers import SchedulerConfig
    from sentinel.diffusion.unet import UNetConfig
    from sentinel.features.image_spec import ImageSpec
    from sentinel.image import evaluation, mvtec
    from sentinel.image.io import load_images
    from sentinel.image.train import fit_image_map, train_images
    from sentinel.scoring.config import ScoringConfig
    from sentinel.scoring.patch_memory import PatchMapConfig
    from sentinel.training.trainer import TrainingConfig

    bundle_dir, cat, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    dev = sys.argv[4] if len(sys.argv) > 4 else "cuda"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    res: dict = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__}
    b = load_bundle(bundle_dir)
    items = mvtec.test_images(cat)
    test = torch.stack(load_images([t.path for t in items], b.spec)[1])
    cpu, gpu = b.scorer("cpu"), b.scorer(dev)
    (s_cpu, m_cpu), (s_gpu, m_gpu) = ((s, torch.stack(m)) for s, m in (cpu.score_maps(test), gpu.score_maps(test)))
    res["image_score_max_abs_diff"] = float((s_cpu - s_gpu).abs().max())
    res["image_score_spearman"] = float(spearmanr(s_cpu, s_gpu).statistic)
    res["map_max_abs_diff"] = float((m_cpu - m_gpu).abs().max())
    res["map_pixel_spearman_sample"] = float(spearmanr(m_cpu.flatten()[::97], m_gpu.flatten()[::97]).statistic)
    for name, (s, m) in {"cpu": (s_cpu, m_cpu), "gpu": (s_gpu, m_gpu)}.items():
        r = evaluation.evaluate(items, s.numpy(), list(m.numpy()))
        res[f"{name}_auc_pixel_pro"] = [round(r["auc"], 4), round(r["pixel_auc"], 4), round(r["pro"], 4)]
    sync()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        gpu.score_maps(test)
        sync()
        times.append((time.perf_counter() - t0) / len(test) * 1000)
    res["gpu_ms_per_image_median"] = float(np.median(times))
    files, images = load_images(mvtec.train_images(cat), b.spec)
    t0 = time.perf_counter()
    mem, cal = fit_image_map(gpu.diffusion, images[:100], images[100:], PatchMapConfig())
    res["gpu_fit_map_s"] = round(time.perf_counter() - t0, 2)
    res["gpu_fit_threshold_vs_bundle"] = [round(cal.threshold, 3), round(b.threshold or float("nan"), 3)]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        r = train_images([cat], Path(tmp) / "b", ImageSpec(size=128), UNetConfig(), SchedulerConfig(), ScoringConfig(),
                         TrainingConfig(steps=200 if dev == "cuda" else 3, batch_size=16, checkpoint_every=1000),
                         torch.device(dev),
                         map_config=PatchMapConfig())
        res["gpu_train_200_steps_s"] = round(time.perf_counter() - t0, 1)
        res["gpu_train_final_loss"] = r.final_loss
        s, m = r.bundle.scorer(dev).score_maps(test)
        e = evaluation.evaluate(items, s.numpy(), [x.numpy() for x in m])
        res["gpu_trained_auc_pixel_pro"] = [round(e["auc"], 4), round(e["pixel_auc"], 4), round(e["pro"], 4)]
    demo_dir = Path(sentinel.__file__).parent / "demo_assets"
    demo = load_bundle(demo_dir / "bundle")
    wave = load_audio(demo_dir / "recording.flac", demo.features.sample_rate)[: 16000 * 60]
    a_cpu = demo.scorer("cpu").score_recording(wave).scores
    a_gpu = demo.scorer(dev).score_recording(wave).scores
    res["audio_score_max_abs_diff"] = float((a_cpu - a_gpu).abs().max())
    res["audio_score_spearman"] = float(spearmanr(a_cpu, a_gpu).statistic)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
