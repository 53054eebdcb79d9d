"""Ablations behind the cpu preset's choices, on the synthetic set (quality only).

Trains FineGAN with GANConfig overrides (unless RUN/model exists), then an encoder with
EncoderConfig overrides, embeds the set and scores several clustering variants:
child level on the child probabilities / the embedding / both, parent level from the
parent probabilities, from the child centres or from the child clusters' silhouettes
(fgdiscover.silhouette; needs boxes); also the NMI of the child clusters
against the *background* labels (low = background ignored). Writes RUN/res.json and
appends a line to benchmarks/results/ablation.jsonl.

    python benchmarks/ablation.py RUN '{"iters": 2000}' '{"iters": 500}' --data SYNTH
    python benchmarks/ablation.py RUN '{}' '{"real_iters": 0}' --data SYNTH  # reuses RUN/model

Run two at once with OMP_NUM_THREADS=1 each: at 32 px one thread trains as fast as two.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from fgdiscover.cluster import hierarchical_kmeans  # noqa: E402
from fgdiscover.embed import embed_images  # noqa: E402
from fgdiscover.metrics import score  # noqa: E402
from fgdiscover.pipeline import _silhouette_rows, load_images, train_run  # noqa: E402
from fgdiscover.train.config import preset  # noqa: E402
from fgdiscover.train.encoder import ENCODER_PRESETS, train_encoder  # noqa: E402
from fgdiscover.train.gan import CHECKPOINT, load_finegan  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("gan", help="JSON of GANConfig overrides (cpu preset)")
    ap.add_argument("encoder", help="JSON of EncoderConfig overrides (cpu preset)")
    ap.add_argument("--data", type=Path, required=True, help="a `fgdiscover synth` folder")
    ap.add_argument("--no-bboxes", action="store_true")
    ap.add_argument("--name", help="encoder variant name (default: from the JSON)")
    a = ap.parse_args(argv)
    t0 = time.time()
    cfg = preset("cpu").replace(**json.loads(a.gan))
    ds = load_images(a.data, cfg.resolution, progress=False, no_bboxes=a.no_bboxes,
                     crop=cfg.crop)
    if not (a.run / "model" / CHECKPOINT).exists():
        train_run(ds, a.run / "model", cfg, progress=False)
    t1 = time.time()
    gan, cfg, _ = load_finegan(a.run / "model")
    enc_cfg = dataclasses.replace(ENCODER_PRESETS["cpu"], **json.loads(a.encoder))
    name = a.name or a.encoder
    out = a.run / f"encoder-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    enc = train_encoder(gan, out / "encoder.pt", enc_cfg, real_images=ds.images,
                        boxes=ds.bboxes, progress=False)
    t2 = time.time()
    emb = embed_images(enc, ds.images, ds.files, out / "emb", progress=False)
    lab = pd.read_csv(a.data / "labels.csv").set_index("file").loc[ds.files]
    feats = np.asarray(emb.features)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    res = {"gan": json.loads(a.gan), "encoder": json.loads(a.encoder), "no_bboxes": a.no_bboxes,
           "gan_s": t1 - t0, "encoder_s": t2 - t1}
    for feat, x in [("child", emb.child_probs), ("embedding", feats),
                    ("both", np.hstack([emb.child_probs, unit]))]:
        k = int(lab.child.nunique())
        modes = [("parent_probs", emb.parent_probs, None), ("centroids", None, None)]
        if np.isfinite(ds.bboxes).all():
            modes.append(("silhouettes", None,
                          functools.partial(_silhouette_rows, ds.images, ds.bboxes, k)))
        for pmode, px, rows in modes:
            r = hierarchical_kmeans(x, px, k=k, k_parent=int(lab.parent.nunique()),
                                    normalize=True, child_descriptors=rows)
            res[f"{feat}/{pmode}"] = {
                "child_nmi": score(lab.child.values, r.child)["nmi"],
                "parent_nmi": score(lab.parent.values, r.parent)["nmi"],
                "background_nmi": score(lab.background.values, r.child)["nmi"]}
    (out / "res.json").write_text(json.dumps(res, indent=1))
    common.append_jsonl(common.RESULTS_DIR / "ablation.jsonl",
                        {**res, "machine": common.machine_info(), "git": common.git_info(),
                         "date": common.now_iso(), "command": " ".join(sys.argv)})
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
