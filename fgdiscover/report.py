"""report.html: one self-contained page per cluster run.

Every picture is embedded as a base64 data URI (galleries re-encoded as small JPEGs, so
the page stays a few MB at k = 200), CSS is inline and there is no script: the page opens
from disk with no server and no network. Navigation is plain anchors: the parent overview
links to ``#parent-P``, and CSS shows a parent's section (its child clusters) only while
it, or one of its children (``#child-C``), is the target of the address.
Links to assignments.csv, clusters.json and the other run files are relative.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from html import escape
from pathlib import Path

from . import __version__

#: Longest side of an embedded picture, by kind.
MAX_SIDE = {"plot": 1600, "grid": 900, "gallery": 264, "strip": 900}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
 background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
nav.top{background:#37474f;padding:6px 24px;position:sticky;top:0;z-index:2}
nav.top a{color:#eceff1;margin-right:18px;text-decoration:none;font-size:14px}
main{padding:8px 24px 40px;max-width:1400px}
h2{border-bottom:2px solid #cfd8dc;padding-bottom:4px;margin-top:32px}
h2,section,figure{scroll-margin-top:44px}
table.kv td{padding:2px 14px 2px 0;vertical-align:top}
table.kv td:first-child{color:#555}
table.metrics{border-collapse:collapse}
table.metrics th,table.metrics td{border:1px solid #cfd8dc;padding:3px 10px;text-align:right}
.links a{margin-right:14px}
img{image-rendering:auto}
img.pixel{image-rendering:pixelated}
.map img{max-width:100%;border:1px solid #ddd;background:#fff}
.parents{display:flex;flex-direction:column;gap:8px}
a.parent-card{display:block;border:1px solid #cfd8dc;background:#fff;padding:6px;border-radius:4px;
 text-decoration:none;color:#222;max-width:100%;overflow-x:auto}
a.parent-card:hover{border-color:#0277bd;box-shadow:0 0 0 2px #b3e5fc}
a.parent-card img{display:block;max-width:none}
section.parent{display:none;border:2px solid #0277bd;border-radius:4px;padding:8px 14px;
 margin:14px 0;background:#fff}
section.parent:target,section.parent:has(:target){display:block}
.children{display:flex;flex-wrap:wrap;gap:12px}
figure.child{margin:0;background:#f5f5f5;padding:6px;border:1px solid #e0e0e0;border-radius:3px}
figure.child:target{outline:3px solid #ff9800}
figure.child figcaption{font-size:12px;max-width:320px;color:#333}
.model{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.model figure{margin:10px 0;max-width:560px}
.model figcaption{font-size:13px}
.model img{border:1px solid #ddd;background:#fff;max-width:100%}
.note{color:#8d6e63}
small.muted{color:#777}
"""

_MODEL_CAPTIONS = {
    "grid": "Hierarchy: one row per parent code (shape), its child codes (appearance) along "
            "the row; noise z and background code b fixed.",
    "grid_background": "Background code b changes along each row; z, parent and child fixed.",
    "grid_parent": "Parent code p changes along each row; z, b and the child's rank fixed.",
    "grid_child": "Child code c changes along each row (within one parent); z, b, p fixed.",
    "grid_stages": "Stage by stage, one sample per row: B background | Pf parent foreground | "
                   "Pm parent mask | P parent image | Cf child foreground | Cm child mask | "
                   "C final image.",
}


def data_uri(path: Path, kind: str) -> str:
    """``path`` (an image) as a data URI, scaled down to ``MAX_SIDE[kind]``; galleries and
    strips (photographs) as JPEG, plots and generator grids as PNG."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        side = MAX_SIDE[kind]
        if max(im.size) > side:
            scale = side / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                           Image.LANCZOS)
        buf = io.BytesIO()
        if kind in ("gallery", "strip"):
            im.save(buf, "JPEG", quality=78, optimize=True)
            mime = "jpeg"
        else:
            im.save(buf, "PNG", optimize=True)
            mime = "png"
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(path: Path, kind: str, alt: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img{c} src="{data_uri(path, kind)}" alt="{escape(alt)}">'


def _rel(path: Path, run_dir: Path) -> str:
    try:
        return path.resolve().relative_to(run_dir).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _duration(seconds) -> str:
    if seconds is None:
        return "not recorded"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return (f"{h} h {m} min" if h else f"{m} min {s} s" if m else f"{s} s")


def _parents_from(cfg: dict) -> str:
    """How the run grouped child clusters into parents, e.g. "silhouette, equal sizes"."""
    parents = str(cfg.get("parents", "features"))
    free_anyway = parents == "features" and cfg.get("features") == "child"  # image-level
    sizes = cfg.get("parent_sizes")  # runs before --parent-sizes do not record it
    return f"{parents}, {sizes} sizes" if sizes and not free_anyway else parents


def _summary(info) -> str:
    from .visualize import skipped_list

    cfg, s = info.config, info.summary or {}
    skipped = skipped_list(info.run_dir) if info.n_skipped else None
    rows = [
        ("data folder", escape(str(cfg.get("data")))),
        ("images clustered", f"{info.n_images:,}"),
        ("skipped files", f"{info.n_skipped:,}" + (
            f' (<a href="{skipped.name}">{skipped.name}</a>)' if skipped else "")),
        ("k (child clusters)", str(info.clusters.get("k", cfg.get("k")))),
        ("parent clusters", str(info.clusters.get("k_parent", cfg.get("k_parent")))),
        ("features clustered", escape(str(cfg.get("features", "embedding")))),
        ("parents from", escape(_parents_from(cfg))),
        ("preset / device", escape(f"{cfg.get('preset')} / {cfg.get('device')}")),
        ("time", _duration(s.get("wall_s")) + (
            " (FineGAN trained in this run)" if s.get("trained_gan") else "")),
        ("labels", escape(str(cfg.get("labels"))) if cfg.get("labels") else
         ("derived: labels.csv" if (info.run_dir / "labels.csv").is_file() else "none")),
    ]
    body = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _metrics(m: dict | None) -> str:
    if not m:
        return "<p><small class=muted>No labels were given: no scores.</small></p>"
    levels = [lv for lv in ("child", "parent") if lv in m]
    names = list(m[levels[0]])
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    column = {"child": m.get("label_column"), "parent": m.get("parent_label_column")}
    rows = "".join(f"<tr><th>{lv} ({escape(str(column[lv]))})</th>"
                   + "".join(f"<td>{m[lv][n]:.3f}</td>" for n in names) + "</tr>"
                   for lv in levels)
    return (f'<table class="metrics"><tr><th>level (label column)</th>{head}</tr>{rows}</table>'
            f'<p><small class=muted>{m.get("n_images", "?")} images scored, '
            f'{m.get("n_classes", "?")} classes.</small></p>')


def _links(run_dir: Path) -> str:
    names = ["assignments.csv", "clusters.json", "metrics.json", "umap.csv", "config.json",
             "summary.json", "galleries/parents.png"]
    return '<p class="links">' + "".join(
        f'<a href="{n}">{n}</a>' for n in names if (run_dir / n).exists()) + "</p>"


def _clusters(info, pics) -> str:
    parent_of, sizes = info.child_to_parent, info.sizes
    cards, sections = [], []
    parents = sorted(pics.parents)
    for i, p in enumerate(parents):
        kids = [c for c in sorted(parent_of) if parent_of[c] == p]
        n_img = sum(sizes.get(c, 0) for c in kids)
        cards.append(f'<a class="parent-card" id="card-{p}" href="#parent-{p}">'
                     f'{_img(pics.parents[p], "strip", f"parent cluster {p}")}</a>')
        figures = []
        for c in kids:
            top = pics.top.get(c, [])
            caption = (f"<b>cluster {c}</b> &middot; {sizes.get(c, 0):,} images &middot; "
                       f"{len(top)} most confident shown")
            figures.append(
                f'<figure class="child" id="child-{c}">'
                f'<a href="{_rel(pics.children[c], info.run_dir)}">'
                f'{_img(pics.children[c], "gallery", f"cluster {c}")}</a>'
                f'<figcaption title="{escape(" ".join(top))}">{caption}</figcaption></figure>')
        step = "".join(
            f' <a href="#parent-{q}">{label}</a>' for q, label in
            ((parents[i - 1], "&larr; previous") if i else (None, None),
             (parents[i + 1], "next &rarr;") if i + 1 < len(parents) else (None, None))
            if q is not None)
        sections.append(
            f'<section class="parent" id="parent-{p}"><h3>Parent cluster {p}: '
            f'{len(kids)} child clusters, {n_img:,} images</h3>'
            f'<p><a href="#clusters">&uarr; all parents</a>{step}</p>'
            f'<div class="children">{"".join(figures)}</div></section>')
    return (f'<p>Click a parent cluster to see its child clusters, each with its most '
            f'confident images (distance-ratio confidence). Parent strips show each child '
            f'cluster\'s top 4 images.</p><div class="parents">{"".join(cards)}</div>'
            + "".join(sections))


def _model(pics) -> str:
    if not pics.generated:
        return "<p><small class=muted>No model pictures.</small></p>"
    figures = []
    for path in pics.generated:
        key = Path(path).stem
        caption = _MODEL_CAPTIONS.get(key, key)
        figures.append(f'<figure>{_img(Path(path), "grid", caption, "pixel")}'
                       f"<figcaption>{escape(caption)}</figcaption></figure>")
    return "".join(figures)


def write_report(info, pics, out: Path) -> Path:
    """Write the self-contained HTML page of a run (see the module docstring); returns
    ``out``. ``info`` is a :class:`~fgdiscover.visualize.RunInfo`, ``pics`` the
    :class:`~fgdiscover.visualize.Pictures` written for it."""
    run_dir = info.run_dir
    name = escape(run_dir.name)
    notes = "".join(f'<p class="note">Note: {escape(n)}</p>' for n in pics.notes)
    umap = (f'<div class="map">{_img(pics.umap_png, "plot", "UMAP map")}</div>'
            f"<p>Computed on {escape(pics.umap_note)}; coordinates in "
            f'<a href="{_rel(pics.umap_csv, run_dir)}">umap.csv</a>.</p>'
            if pics.umap_png else "<p><small class=muted>No map.</small></p>")
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    html = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fgdiscover report: {name}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>fgdiscover: {name}</h1>
<small>{info.n_images:,} images, {info.clusters.get("k")} clusters under
{info.clusters.get("k_parent")} parents</small></header>
<nav class="top"><a href="#summary">Summary</a><a href="#map">Map</a>
<a href="#clusters">Clusters</a><a href="#model">Model</a></nav>
<main>
<h2 id="summary">Summary</h2>
{_summary(info)}
<h3>Scores</h3>
{_metrics(info.metrics)}
{_links(run_dir)}
{notes}
<h2 id="map">UMAP map</h2>
{umap}
<h2 id="clusters">Clusters</h2>
{_clusters(info, pics)}
<h2 id="model">What the FineGAN learned</h2>
<div class="model">{_model(pics)}</div>
<p><small class=muted>fgdiscover {__version__}, {when}</small></p>
</main></body></html>
"""
    out = Path(out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
