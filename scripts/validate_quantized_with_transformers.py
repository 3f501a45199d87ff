#!/usr/bin/env python3
# scripts/validate_quantized_with_transformers.py — checks checkpoints written by `qforge quantize`
# against what the Python ecosystem expects, without bitsandbytes: key names, dtypes and shapes per
# serialization, the packed bnb quant_state JSON, quantization_config parsed by transformers' own
# config classes, a torch re-implementation of each format's dequantize rule compared with the source
# weights (and, for nf4/fp4, a torch re-quantization with the bnb rule compared code by code), and
# loading through transformers where it has built-in support.
#
# usage: python3 scripts/validate_quantized_with_transformers.py OUT_DIR... [--reference SRC_DIR]
# (the source model defaults to the "qforge.source" metadata qforge writes into each shard)
import argparse
import json
import math
import os
import struct
import sys
import traceback

import torch
from safetensors import safe_open

NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]
# bnb get_4bit_type("fp4"): bit-pattern order, fp32 hex from the spec (index 8 is -0.0)
FP4 = [struct.unpack("<f", bytes.fromhex(h)[::-1])[0] for h in (
    "00000000 3baaaaab 3f2aaaab 3f800000 3eaaaaab 3f000000 3e2aaaab 3e800000 "
    "80000000 bbaaaaab bf2aaaab bf800000 beaaaaab bf000000 be2aaaab be800000").split()]
E2M1 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]
LINEAR = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]

ROWS = []


def report(model, check, ok, detail=""):
    status = "PASS" if ok is True else ("SKIP" if ok is None else "FAIL")
    ROWS.append((os.path.basename(os.path.normpath(model)), check, status, detail))


def dynamic_map():
    """bitsandbytes create_dynamic_map(signed=True) in fp32, as functional.py builds it."""
    data = []
    for i in range(7):
        b = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        m = (b[:-1] + b[1:]) / 2
        data += ((10 ** (i - 6)) * m).tolist()
        data += (-(10 ** (i - 6)) * m).tolist()
    data += [0.0, 1.0]
    return torch.tensor(sorted(data), dtype=torch.float32)


class Tensors:
    """Every tensor of a model directory (single file or index), read lazily."""

    def __init__(self, d):
        self.where, self.meta = {}, {}
        idx = os.path.join(d, "model.safetensors.index.json")
        files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
        self.handles = {}
        for f in files:
            h = safe_open(os.path.join(d, f), framework="pt")
            self.handles[f] = h
            self.meta[f] = h.metadata() or {}
            for k in h.keys():
                self.where[k] = f

    def __contains__(self, k):
        return k in self.where

    def get(self, k):
        return self.handles[self.where[k]].get_tensor(k)

    def keys(self):
        return self.where.keys()


def modules_of(cfg):
    return [f"model.layers.{i}.{leaf}" for i in range(cfg["num_hidden_layers"]) for leaf in LINEAR]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---------------------------------------------------------------- per-format dequantize (torch) --
def deq_bnb4(t, m, dmap):
    st_raw = bytes(t.get(m + ".weight.quant_state.bitsandbytes__nf4" if m + ".weight.quant_state.bitsandbytes__nf4" in t
                         else m + ".weight.quant_state.bitsandbytes__fp4").tolist())
    st = json.loads(st_raw.decode("utf-8"))
    keys = list(st.keys())
    want = ["quant_type", "blocksize", "dtype", "shape"] + (["nested_blocksize", "nested_dtype", "nested_offset"]
                                                           if "nested_offset" in st else [])
    check(keys == want, f"{m}: quant_state keys {keys} != {want}")
    check(st_raw.decode() == json.dumps(st), f"{m}: quant_state is not json.dumps formatted")
    n = st["shape"][0] * st["shape"][1]
    B = st["blocksize"]
    nb = (n + B - 1) // B
    w = t.get(m + ".weight")
    check(w.dtype == torch.uint8 and list(w.shape) == [(n + 1) // 2, 1], f"{m}.weight {w.dtype} {list(w.shape)}")
    qm = t.get(m + ".weight.quant_map")
    table = NF4 if st["quant_type"] == "nf4" else FP4
    check(qm.dtype == torch.float32 and torch.equal(qm, torch.tensor(table, dtype=torch.float32)), f"{m}: quant_map")
    am = t.get(m + ".weight.absmax")
    if "nested_offset" in st:
        check(am.dtype == torch.uint8 and list(am.shape) == [nb], f"{m}.absmax {am.dtype} {list(am.shape)}")
        na = t.get(m + ".weight.nested_absmax")
        nm = t.get(m + ".weight.nested_quant_map")
        check(na.dtype == torch.float32 and list(na.shape) == [(nb + 255) // 256], f"{m}.nested_absmax")
        check(torch.equal(nm, dmap), f"{m}: nested_quant_map != create_dynamic_map(signed=True)")
        idx = torch.arange(nb) // 256
        absmax = (nm[am.long()] * na[idx]) + torch.tensor(st["nested_offset"], dtype=torch.float32)
    else:
        check(am.dtype == torch.float32 and list(am.shape) == [nb], f"{m}.absmax {am.dtype} {list(am.shape)}")
        absmax = am
    b = w.flatten()
    codes = torch.stack([b >> 4, b & 15], dim=1).flatten()[:n].long()
    vals = qm[codes] * absmax.repeat_interleave(B)[:n]
    dt = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[st["dtype"]]
    return vals.to(dt).float().reshape(st["shape"]), {"codes": codes, "absmax": absmax, "B": B, "st": st}


def requant_bnb4(x, info):
    """bnb CUDA rule with an IEEE reciprocal (the kernel's rcp.approx may differ by 1 ulp)."""
    B, n = info["B"], x.numel()
    flat = x.flatten().float()
    pad = (-n) % B
    blocks = torch.cat([flat, torch.zeros(pad)]).reshape(-1, B)
    absmax = blocks.abs().amax(dim=1)
    y = blocks * (1.0 / absmax)[:, None]
    table = torch.tensor(NF4 if info["st"]["quant_type"] == "nf4" else FP4)
    if info["st"]["quant_type"] == "nf4":
        mids = (table[:-1] + table[1:]) / 2
        codes = (y[..., None] > mids).sum(-1)
    else:  # fp4 CUDA literals
        a = y.abs()
        th = [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333]
        mag_order = torch.tensor([0, 1, 6, 7, 4, 5, 2, 3])
        codes = mag_order[(a[..., None] > torch.tensor(th)).sum(-1)] + 8 * (y < 0)
    codes[absmax == 0] = 0
    # distance of each normalised value to its nearest decision threshold (an IEEE vs rcp.approx
    # reciprocal can only flip a code there)
    thr = mids if info["st"]["quant_type"] == "nf4" else torch.tensor(th)
    yv = y if info["st"]["quant_type"] == "nf4" else y.abs()
    dist = (yv[..., None] - thr).abs().amin(-1)
    return absmax, codes.flatten()[:n], dist.flatten()[:n]


def deq_int8(t, m):
    w, scb = t.get(m + ".weight"), t.get(m + ".SCB")
    check(w.dtype == torch.int8 and w.dim() == 2, f"{m}.weight {w.dtype}")
    check(scb.dtype == torch.float32 and list(scb.shape) == [w.shape[0]], f"{m}.SCB {scb.dtype} {list(scb.shape)}")
    wf = t.get(m + ".weight_format")
    check(wf.dtype == torch.uint8 and wf.dim() == 0 and int(wf) == 0, f"{m}.weight_format")
    return w.float() * scb[:, None] * 7.874015718698502e-3, scb[:, None] / 127


def deq_fp8(t, m):
    w, s = t.get(m + ".weight"), t.get(m + ".weight_scale")
    check(w.dtype == torch.float8_e4m3fn, f"{m}.weight {w.dtype}")
    check(s.dtype == torch.float32 and (list(s.shape) == [1] or list(s.shape) == [w.shape[0], 1]),
          f"{m}.weight_scale {s.dtype} {list(s.shape)}")
    check(m + ".input_scale" not in t, f"{m}: unexpected input_scale for dynamic activations")
    return w.float() * s, s


def deq_nvfp4(t, m, cols):
    w, s, s2, ins = (t.get(m + k) for k in (".weight", ".weight_scale", ".weight_scale_2", ".input_scale"))
    kp = (cols + 15) // 16 * 16
    check(w.dtype == torch.uint8 and list(w.shape) == [w.shape[0], kp // 2], f"{m}.weight {w.dtype} {list(w.shape)}")
    check(s.dtype == torch.float8_e4m3fn and list(s.shape) == [w.shape[0], kp // 16], f"{m}.weight_scale")
    check(s2.dtype == torch.float32 and s2.dim() == 0 and ins.dtype == torch.float32 and ins.dim() == 0,
          f"{m}: weight_scale_2/input_scale must be f32 scalars")
    check(float(ins) > 0 and math.isfinite(float(ins)), f"{m}: input_scale {float(ins)}")
    lut = torch.tensor(E2M1)
    codes = torch.stack([w & 15, w >> 4], dim=2).reshape(w.shape[0], kp).long()  # low nibble = even k
    sc = s.float().repeat_interleave(16, dim=1) * s2
    return (lut[codes] * sc)[:, :cols], sc[:, :cols]


def deq_gptq(t, m, cfg_q):
    qw, qz, sc, gi = (t.get(m + k) for k in (".qweight", ".qzeros", ".scales", ".g_idx"))
    K8, N = qw.shape
    g = cfg_q["group_size"]
    check(qw.dtype == torch.int32 and qz.dtype == torch.int32 and sc.dtype == torch.float16 and gi.dtype == torch.int32,
          f"{m}: dtypes {qw.dtype} {qz.dtype} {sc.dtype} {gi.dtype}")
    K = gi.shape[0]
    check(torch.equal(gi, torch.arange(K, dtype=torch.int32) // g), f"{m}: g_idx is not k // group_size")
    shifts = torch.arange(0, 32, 4, dtype=torch.int32)
    q = ((qw[:, None, :] >> shifts[None, :, None]) & 15).reshape(K8 * 8, N)[:K]
    z = ((qz[:, :, None] >> shifts[None, None, :]) & 15).reshape(qz.shape[0], -1)[:, :N]
    z = z + 1 if cfg_q.get("checkpoint_format", "gptq") == "gptq" else z
    s = sc.float()[gi.long()]
    return ((q - z[gi.long()]).float() * s).T.contiguous(), s.T


# -------------------------------------------------------------------------------------- driver --
def validate(d, ref_arg):
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg.get("quantization_config")
    report(d, "config.json has quantization_config", qc is not None, (qc or {}).get("quant_method", ""))
    if qc is None:
        return
    method = qc["quant_method"]
    try:
        from transformers import AutoConfig
        c = AutoConfig.from_pretrained(d)
        report(d, "transformers AutoConfig", getattr(c, "quantization_config", None) is not None, type(c).__name__)
    except Exception as e:  # noqa: BLE001
        report(d, "transformers AutoConfig", False, repr(e)[:120])
    try:
        import transformers
        if method == "bitsandbytes":
            bc = transformers.BitsAndBytesConfig.from_dict(dict(qc))
            ok = (bc.load_in_4bit == qc["load_in_4bit"] and bc.load_in_8bit == qc["load_in_8bit"] and
                  (not bc.load_in_4bit or (bc.bnb_4bit_quant_type == qc["bnb_4bit_quant_type"] and
                                           bc.bnb_4bit_use_double_quant == qc["bnb_4bit_use_double_quant"])))
            report(d, "BitsAndBytesConfig.from_dict", ok, f"4bit={bc.load_in_4bit} 8bit={bc.load_in_8bit}")
        elif method == "gptq":
            gc = transformers.GPTQConfig.from_dict(dict(qc))
            report(d, "GPTQConfig.from_dict", gc.bits == 4 and gc.group_size == qc["group_size"], f"group {gc.group_size}")
    except Exception as e:  # noqa: BLE001
        report(d, "transformers quantization config class", None, "not constructible here: " + repr(e)[:100])

    t = Tensors(d)
    report(d, "safetensors metadata format=pt", all(m.get("format") == "pt" for m in t.meta.values()))
    ref_dir = ref_arg or next((m.get("qforge.source") for m in t.meta.values() if m.get("qforge.source")), None)
    ref = Tensors(ref_dir) if ref_dir and os.path.isdir(ref_dir) else None
    if ref is None:
        report(d, "reference model", None, f"not found ({ref_dir}); dequantize-vs-source checks skipped")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        report(d, f"{f} copied", os.path.exists(os.path.join(d, f)) or None)

    dmap = dynamic_map()
    mods = modules_of(cfg)
    fails, worst, code_mismatch, code_unexplained, code_total = [], 0.0, 0, 0, 0
    for m in mods:
        try:
            if method == "bitsandbytes" and qc.get("load_in_4bit"):
                x, info = deq_bnb4(t, m, dmap)
                tol = None
            elif method == "bitsandbytes":
                x, step = deq_int8(t, m)
            elif method == "compressed-tensors":
                x, step = deq_fp8(t, m)
            elif method == "modelopt":
                x, step = deq_nvfp4(t, m, ref.get(m + ".weight").shape[1] if ref else t.get(m + ".weight").shape[1] * 2)
            elif method == "gptq":
                x, step = deq_gptq(t, m, qc)
            else:
                raise AssertionError("unknown quant_method " + method)
            if ref is None:
                continue
            w = ref.get(m + ".weight").float()
            check(list(x.shape) == list(w.shape), f"{m}: dequantized shape {list(x.shape)} != {list(w.shape)}")
            err = (x - w).abs()
            if method == "bitsandbytes" and qc.get("load_in_4bit"):
                absmax, codes, dist = requant_bnb4(w, info)
                stored_absmax = info["absmax"] if "nested_offset" not in info["st"] else None
                if stored_absmax is not None:
                    check(torch.equal(stored_absmax, absmax), f"{m}: absmax != max|w| per block")
                diff = codes != info["codes"]
                code_mismatch += int(diff.sum())
                code_unexplained += int((diff & (dist > 2 ** -20)).sum())
                code_total += codes.numel()
                gap = 0.5 * float(torch.tensor(sorted(NF4 if info["st"]["quant_type"] == "nf4" else FP4)).diff().max())
                per_el = lambda v: v.repeat_interleave(info["B"])[: w.numel()].reshape(w.shape)  # noqa: E731
                tol = per_el(info["absmax"]) * (gap + 1e-2) + w.abs() * 2 ** -7
                if stored_absmax is None:  # double quant: codes chosen with max|w|, scaled by the 8-bit absmax
                    tol = tol + per_el((absmax - info["absmax"]).abs())
            elif method == "bitsandbytes":
                tol = step * 0.5 * 1.001 + w.abs() * 2 ** -10   # int8 half step + the fp16 cast of w
            elif method == "compressed-tensors":
                tol = w.abs() * 2 ** -4 + step * 2 ** -9       # e4m3 half ulp, subnormal step
            elif method == "modelopt":
                tol = step * 1.0 + w.abs() * 2 ** -3           # e2m1 largest half gap, block-scale rounding
            else:
                tol = step * 1.01 + 1e-6                        # int4 rounding + zero-point rounding + f16 scale
            ratio = float((err / tol.clamp_min(1e-30)).max())
            worst = max(worst, ratio)
            check(ratio <= 1.0, f"{m}: |dequant - source| exceeds the format bound (x{ratio:.2f})")
        except Exception as e:  # noqa: BLE001
            fails.append(f"{m}: {e}" if isinstance(e, AssertionError) else f"{m}: {traceback.format_exc(limit=1)}")
    report(d, f"{len(mods)} modules: keys/dtypes/shapes + dequantize", not fails,
           fails[0][:160] if fails else (f"worst err/bound {worst:.3f}" if ref else "layout only"))
    if code_total:
        report(d, "bnb 4-bit codes == torch re-quantization", code_unexplained == 0,
               f"{code_mismatch}/{code_total} differ, all within 2^-20 of a threshold (IEEE vs the kernel's "
               f"rcp.approx reciprocal)" if code_unexplained == 0 else
               f"{code_unexplained} of {code_mismatch} differing codes are not at a threshold")

    # unquantized tensors kept in the config dtype
    dt = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[cfg.get("dtype", cfg.get("torch_dtype"))]
    emb = t.get("model.embed_tokens.weight")
    report(d, "embeddings in config dtype", emb.dtype == dt, str(emb.dtype))

    if method == "compressed-tensors":
        try:
            import compressed_tensors  # noqa: F401
        except ImportError:
            report(d, "transformers load (compressed-tensors)", None, "compressed_tensors package not installed")
            return
        try:
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained(d, device_map="cuda" if torch.cuda.is_available() else "cpu")
            ids = torch.tensor([[1, 450, 3186, 310, 278]], device=model.device)
            with torch.no_grad():
                logits = model(ids).logits.float()
            report(d, "transformers load (compressed-tensors) + forward", bool(torch.isfinite(logits).all()),
                   f"logits {list(logits.shape)}")
        except Exception as e:  # noqa: BLE001
            report(d, "transformers load (compressed-tensors) + forward", False, repr(e)[:160])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--reference", help="the float model the checkpoints were quantized from")
    a = ap.parse_args()
    for d in a.dirs:
        try:
            validate(d, a.reference)
        except Exception as e:  # noqa: BLE001
            report(d, "validation ran", False, repr(e)[:160])
    w = [max(len(r[i]) for r in ROWS + [("model", "check", "result", "")]) for i in range(3)]
    print(f"{'model':<{w[0]}}  {'check':<{w[1]}}  {'result':<{w[2]}}  detail")
    for r in ROWS:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}")
    n_fail = sum(r[2] == "FAIL" for r in ROWS)
    print(f"\n{'FAIL' if n_fail else 'PASS'}: {len(ROWS)} checks, {n_fail} failed, {sum(r[2] == 'SKIP' for r in ROWS)} skipped")
    sys.exit(1 if n_fail else 0)


if __name__ == "__main__":
    main()
