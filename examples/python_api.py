"""The library behind `fgdiscover cluster`, step by step, on a small synthetic set.

Run: python examples/python_api.py [WORKDIR]   (a few minutes on 2 CPU cores; a short
run: expect modest scores, `fgdiscover cluster` trains 10x longer)
"""

import sys
from pathlib import Path

from fgdiscover.cluster import hierarchical_kmeans
from fgdiscover.data.synthetic import make_synthetic
from fgdiscover.embed import embed_images
from fgdiscover.metrics import score
from fgdiscover.pipeline import load_images, train_run
from fgdiscover.train.config import preset
from fgdiscover.train.encoder import ENCODER_PRESETS, train_encoder
from fgdiscover.train.gan import load_finegan

work = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/python-api").resolve()
synth = make_synthetic(work / "data", n_parent=2, children_per_parent=2, n=600, size=32)

cfg = preset("cpu").replace(n_parent=2, n_child=4, iters=300)          # a short run
images = load_images(synth.root, cfg.resolution)                       # decoded once, cached
train_run(images, work / "model", cfg, resume=(work / "model/checkpoints/last.pt").exists())
gan, cfg, _ = load_finegan(work / "model")
# phase 1 on generated images, phase 2 on the real objects pasted onto generated backgrounds
encoder = train_encoder(gan, work / "model/encoder.pt", ENCODER_PRESETS["cpu"],
                        real_images=images.images, boxes=images.bboxes)
emb = embed_images(encoder, images.images, images.files, work / "embeddings")

res = hierarchical_kmeans(emb.features, k=4, k_parent=2, normalize=True)  # parents: centres
order = {f: i for i, f in enumerate(synth.files)}
truth = [synth.child[order[f]] for f in images.files]
print("child level:", score(truth, res.child))
