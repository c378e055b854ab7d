"""What a HARD augmentor does, for the lab's pages: its hardness in words and over the steps, and what it
chose per sample (each parameter with its units and a reference: a bound, a maximum, the identity).
Hardness = KL(teacher ‖ student) on the augmented images over the same on the images clean (1: nothing
harder than the data)."""
from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hard_core.assets import ASSETS, VAE_NAME, vae_edit_bound
from hard_core.augment.hard.affine import parse_dof
from hard_core.jsonfile import read_dict
from hard_core.worlds import WORLDS

from .figures import HEIGHT, PALETTE, downsample, layout

HARDNESS_FOUND = 1.2  # hardness at or above this after the warm-up: the augmentor found something
HARDNESS_WARMUP = 100  # steps before the verdict: the augmentor starts wide, its first draws prove nothing


def hardness_reading(events: list[dict]) -> dict | None:
    """The latest hardness of a HARD run in words: {"step", "value", "found", "text"}, where `found` is
    None during the warm-up, then whether the augmentor made images clearly harder than the data
    (hardness >= HARDNESS_FOUND, averaged over the last three readings). None for runs without one."""
    steps = [e for e in events if e.get("kind") == "step" and "hardness" in (e.get("extra") or {})]
    if not steps:
        return None
    last = [e["extra"]["hardness"] for e in steps[-3:] if e["extra"]["hardness"] is not None]
    value, step = (sum(last) / len(last) if last else float("nan")), steps[-1]["step"]
    meaning = (f"the student disagrees with the teacher {value:.2g}× as much on the augmented images as on "
               "the same images clean")
    if step < HARDNESS_WARMUP:
        found, text = None, f"Hardness {value:.2f} at step {step}: {meaning} (the augmentor is still warming up)."
    elif value >= HARDNESS_FOUND:
        found, text = True, (f"Hardness {value:.2f} at step {step}: {meaning}. The augmentor has found where "
                             "the student fails.")
    else:
        found, text = False, (f"Hardness {value:.2f} at step {step}: the augmented images are no harder for the "
                              f"student than clean ones (below {HARDNESS_FOUND:g}). The augmentor has found "
                              "nothing so far: this family may not express what the student lacks.")
    return {"step": step, "value": value, "found": found, "text": text}


def hardness_figure(events: list[dict]) -> go.Figure | None:
    """HARD's hardness vs step: KL(T || S) on the augmented images over KL(T || S) on the same images clean,
    with the line at 1 (no harder than the data) and the line where "found something" starts; the title
    reads the latest value in words. None for runs without an augmentor."""
    steps = downsample([e for e in events if e.get("kind") == "step" and "hardness" in (e.get("extra") or {})])
    if not steps:
        return None
    reading = hardness_reading(events)
    fig = go.Figure(go.Scatter(x=[e["step"] for e in steps], y=[e["extra"]["hardness"] for e in steps],
                               name="hardness", mode="lines", line=dict(color=PALETTE[1], width=2)))
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dash"), annotation_text="1: as hard as the clean images",
                  annotation_position="bottom right")
    fig.add_hline(y=HARDNESS_FOUND, line=dict(color="grey", dash="dot"),
                  annotation_text=f"{HARDNESS_FOUND:g}: the augmentor found something", annotation_position="top left")
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="KL on augmented / KL on clean", rangemode="tozero", tickformat=".2~g")
    verdict = {None: "warming up", True: "found where the student fails", False: "found nothing so far"}
    return layout(fig, f"Hardness {reading['value']:.2f} at step {reading['step']}: {verdict[reading['found']]}",
                  "hardness", height=260,
                   showlegend=False)


# name -> (axis title with units, what its extremes mean)
PARAMS = {"tx": "tx (pixels, + = right)", "ty": "ty (pixels, + = down)", "rotate": "rotation (degrees, + = counter-clockwise)",
          "scale": "zoom − 1 (+ = larger)", "shear": "shear (fraction of the side)",
          "weight": "partner's share of the image (0 = own image, 1 = the partner everywhere)",
          "latent_norm": "‖latent edit‖ (L2 over the VAE latent)", "pixel_change": "mean |pixel change| (0-1 intensity)",
          "gain": "gain: white − black (1 = unchanged, −1 = inverted)", "bias": "where black goes (0 = unchanged, 1 = white)"}


def param_references(snapshot: dict, config: dict | None = None) -> dict[str, tuple[list[float], str]]:
    """Per augmentor parameter, reference values to draw and what they mean: the affine bounds (from the
    run's `affine` setting; the default translate bound without a config), the mixing weight's maximum, the
    VAE's largest possible edit (every latent element at ±eps), the colour map's identity and inversion,
    and a clean digit's mean brightness for the VAE's pixel change."""
    refs: dict[str, tuple[list[float], str]] = {}
    clean = snapshot.get("clean")
    if clean is not None and clean.dim() == 4:
        try:
            bounds = parse_dof((config or {}).get("affine") or "translate", tuple(clean.shape[1:]))
        except Exception:  # a config this lab cannot read: draw no bounds rather than fail the page
            bounds = {}
        for name, bound in bounds.items():
            for key in (("tx", "ty") if name == "translate" else (name,)):
                refs[key] = ([-bound, bound], f"bound ±{bound:g}")
        ink = float(clean.float().mean()) / (255 if clean.dtype == torch.uint8 else 1)
        refs["pixel_change"] = ([ink], f"a clean image's mean brightness ({ink:.2f})")
    refs["weight"] = ([0.0, 1.0], "0 / maximum")
    refs["gain"] = ([-1.0, 1.0], "inverted / unchanged")
    refs["bias"] = ([0.0, 1.0], "unchanged / inverted")
    latent = vae_latent(config or {})
    if latent is not None:
        eps, size = latent
        refs["latent_norm"] = ([eps * size ** 0.5], f"largest edit: all {size} elements at ±eps = ±{eps:.2f}")
    return refs


def vae_latent(config: dict) -> tuple[float, int] | None:
    """(eps, latent size) of the shipped VAE a HARD-vae run uses by default: eps is the bound on each
    latent element (`hard_core.assets.vae_edit_bound`, as the augmentor's); None for another VAE."""
    if config.get("hard") != "vae" or config.get("vae", "default") != "default":
        return None
    world = WORLDS.get(config.get("world") or "shift")
    card = ASSETS / f"{(world.vae if world and world.vae else VAE_NAME)}.json"
    try:
        info = read_dict(card) or {}
        return vae_edit_bound(info["config"]), int(math.prod(info["latent_shape"]))
    except (OSError, KeyError, ValueError, TypeError):
        return None


def params_figure(snapshot: dict, config: dict | None = None) -> go.Figure | None:
    """What the augmentor chose for each augmented sample, with units and references: for the affine
    augmentor a scatter of the translation (tx, ty) in pixels inside its bound, and a histogram per other
    degree of freedom over its full range; for mix, colour and vae a histogram per parameter with its
    range (see `param_references`). `config`: the run's config (bounds, world); None = the defaults.
    None when the snapshot has no param.* keys (no HARD augmentor)."""
    params = {k[len("param."):]: v.detach().float().cpu().flatten().tolist()
              for k, v in snapshot.items() if k.startswith("param.")}
    params.pop("partner", None)  # an index into the batch: not a quantity to histogram
    if not params:
        return None
    refs = param_references(snapshot, config)
    xy = "tx" in params and "ty" in params
    panels = (["translation"] if xy else []) + [k for k in params if not (xy and k in ("tx", "ty"))]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.1)
    for i, name in enumerate(panels, start=1):
        if name == "translation":
            fig.add_trace(go.Scatter(x=params["tx"], y=params["ty"], mode="markers", name="(tx, ty)",
                                     marker=dict(size=6, opacity=0.6, color=PALETTE[1])), row=1, col=i)
            b = refs.get("tx", ([0, 0], ""))[0][1] or max(max(map(abs, params["tx"] + params["ty"])), 1e-3)
            fig.add_shape(type="rect", x0=-b, x1=b, y0=-b, y1=b, line=dict(color="grey", dash="dash"), row=1, col=i)
            m = 1.15 * b  # the bound's box, 0 in the middle: how far the augmentor moves, at a glance
            fig.update_xaxes(title_text=f"{PARAMS['tx']}; box: ±{b:g} px bound", range=[-m, m], row=1, col=i)
            fig.update_yaxes(title_text=PARAMS["ty"], range=[m, -m], row=1, col=i)
            continue
        fig.add_trace(go.Histogram(x=params[name], name=name, nbinsx=20, marker=dict(color=PALETTE[i % 9])),
                      row=1, col=i)
        title = PARAMS.get(name, name)
        if name in refs:
            values, meaning = refs[name]
            for v in values:
                fig.add_vline(x=v, line=dict(color="grey", dash="dash"), row=1, col=i)
            lo, hi = min(values + params[name]), max(values + params[name])
            pad = 0.05 * (hi - lo or 1.0)
            fig.update_xaxes(range=[min(lo, 0) - pad, hi + pad], row=1, col=i)
            title += f"<br>dashed: {meaning}"
        fig.update_xaxes(title_text=title, row=1, col=i)
        fig.update_yaxes(title_text="samples", row=1, col=i)
    n = len(next(iter(params.values())))
    # its step: the Live page redraws this figure less often than the images above it
    at = f" at step {snapshot['_step']}" if "_step" in snapshot else ""
    return layout(fig, f"What the augmentor chose{at} ({n} samples)", "params", showlegend=False,
                   height=HEIGHT + 20)
