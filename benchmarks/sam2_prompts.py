"""Time SAM 2.1 tiny's image embedding against a prompt on the cached embedding.

Run: ``.venv/bin/python benchmarks/sam2_prompts.py`` (defaults: 3 generated 640x480 images, 5 repeats
of each prompt kind). The model is built offline from its config with random weights: the
times are those of the real architecture, the masks are meaningless. Target: a prompt on a
cached embedding under 10% of the embedding time (what makes click-by-click annotation
interactive).

``prompt ms`` is ``SegmentResult.prompt_ms`` (prompt encoder, mask decoder, upscaling to the
image); ``segment ms`` is the whole ``segment`` call on the image array (pixel digest for the
cache key, RLE encoding and box included).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from mleval.models.sam2_predictor import build_sam2_predictor
from mleval.models.weights import ResolvedWeights
from mleval.models.zoo import zoo_entry
from mleval.synthetic.render import render_shapes_image


def _images(count: int, width: int, height: int) -> list[tuple[np.ndarray, list]]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        image, objects = render_shapes_image(rng, image_size=(width, height), max_objects=3)
        out.append((np.asarray(image).copy(), objects))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sam2.1_t", help="zoo name of a SAM 2.1 variant")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="prompts of each kind per image")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    entry = zoo_entry(args.model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = build_sam2_predictor(entry, ResolvedWeights("architecture", entry.config, False),
                                         name=entry.name, device=args.device)
    build_s = time.perf_counter() - start
    print(f"{entry.name} ({entry.config}, random weights) on {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; built in {build_s:.1f} s")

    embedding_ms: list[float] = []
    prompt_ms: dict[str, list[float]] = {"1 point": [], "2 points": [], "box": [], "box + point": []}
    segment_ms: list[float] = []
    for rgb, objects in _images(args.images, args.width, args.height):
        embedding_ms.append(predictor.set_image(rgb))
        x1, y1, x2, y2 = objects[0].bbox_xyxy
        centre = ((x1 + x2) / 2, (y1 + y2) / 2)
        prompts = {
            "1 point": {"points": [(*centre, 1)]},
            "2 points": {"points": [(*centre, 1), (2.0, 2.0, 0)]},
            "box": {"box": [x1, y1, x2, y2]},
            "box + point": {"box": [x1, y1, x2, y2], "points": [(*centre, 1)]},
        }
        for _ in range(args.repeat):
            for kind, prompt in prompts.items():
                start = time.perf_counter()
                result = predictor.segment(rgb, **prompt)
                elapsed = (time.perf_counter() - start) * 1000.0
                assert result.embedding_ms == 0.0, "the embedding should have been cached"
                prompt_ms[kind].append(result.prompt_ms)
                segment_ms.append(elapsed)

    embedding = statistics.mean(embedding_ms)
    print(f"\nimage {args.width}x{args.height}, {args.images} images, {args.repeat} repeats per prompt kind")
    print(f"{'':<24}{'mean ms':>10}{'median ms':>11}{'% of embedding':>16}")
    print(f"{'embedding (set_image)':<24}{embedding:>10.0f}{statistics.median(embedding_ms):>11.0f}{100:>15.0f}%")
    for kind, values in prompt_ms.items():
        mean = statistics.mean(values)
        print(f"{'prompt: ' + kind:<24}{mean:>10.1f}{statistics.median(values):>11.1f}{100 * mean / embedding:>15.1f}%")
    all_prompts = [v for values in prompt_ms.values() for v in values]
    mean_segment = statistics.mean(segment_ms)
    print(f"{'segment() call, any':<24}{mean_segment:>10.1f}{statistics.median(segment_ms):>11.1f}"
          f"{100 * mean_segment / embedding:>15.1f}%")
    ratio = statistics.mean(all_prompts) / embedding
    print(f"\nprompt / embedding = {ratio:.3f} ({1 / ratio:.0f}x cheaper); target < 0.10: "
          f"{'met' if ratio < 0.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
