#!/usr/bin/env python3
# benches/llama_cpp/compare_gguf_tensors.py — byte-compares the tensor data of two GGUF files by tensor name
# (used to check that qforge's q4_0/q8_0/q4_k quantizers write exactly what llama.cpp's
# llama_model_quantize writes from the same f32 GGUF; see docs/gguf.md). No dependencies.
import struct, sys
def read_gguf(path):
    d=open(path,'rb').read(); o=0
    def u32():
        nonlocal o; v=struct.unpack_from('<I',d,o)[0]; o+=4; return v
    def u64():
        nonlocal o; v=struct.unpack_from('<Q',d,o)[0]; o+=8; return v
    def s():
        n=u64(); nonlocal o; v=d[o:o+n].decode('utf8','replace'); o+=n; return v
    sizes={0:1,1:1,2:2,3:2,4:4,5:4,6:4,7:1,10:8,11:8,12:8}
    def val(t):
        nonlocal o
        if t==8: return s()
        if t==9:
            et=u32(); n=u64()
            if et==8: return [s() for _ in range(n)]
            o+=sizes[et]*n; return None
        v=d[o:o+sizes[t]]; o+=sizes[t]; return v
    assert d[:4]==b'GGUF'; o=4; ver=u32(); nt=u64(); nkv=u64()
    align=32
    for _ in range(nkv):
        k=s(); t=u32(); v=val(t)
        if k=='general.alignment': align=struct.unpack('<I',v)[0]
    infos=[]
    for _ in range(nt):
        name=s(); nd=u32(); dims=[u64() for _ in range(nd)]; typ=u32(); off=u64(); infos.append((name,dims,typ,off))
    base=(o+align-1)//align*align
    offs=sorted(set(x[3] for x in infos))+[len(d)-base]
    out={}
    for name,dims,typ,off in infos:
        nxt=min(x for x in offs if x>off)
        out[name]=(typ,d[base+off:base+nxt])
    return out
a=read_gguf(sys.argv[1]); b=read_gguf(sys.argv[2])
same=diff=0
for n,(t,x) in a.items():
    if n not in b: print("missing",n); continue
    t2,y=b[n]
    n_el = min(len(x),len(y))
    if t!=t2: print(f"{n}: type {t} vs {t2}"); continue
    if x[:n_el]==y[:n_el]: same+=1
    else:
        diff+=1; nd=sum(1 for i in range(n_el) if x[i]!=y[i]); print(f"{n}: type {t}: {nd} of {n_el} bytes differ")
print(f"{sys.argv[1]} vs {sys.argv[2]}: {same} tensors identical, {diff} differ")
