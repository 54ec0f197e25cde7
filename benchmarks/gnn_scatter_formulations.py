"""Which formulation of sum aggregation is fastest in onnxruntime (vs torch eager)?

A linear layer (64 → 16) then ``out[i] = Σ_{j→i} h_j`` written four ways, exported with the dynamo
exporter and timed in onnxruntime and in torch eager (one thread each, each engine in its own block)
at 30 nodes / 60 edges, Cora size (2,708 / 13,264) and 20k / 200k::

    python benchmarks/gnn_scatter_formulations.py

``segment`` (sort + cumsum + gather) fails to export (``aten.sort`` has no ONNX translation) and is
reported as such.
"""
import tempfile, os\nimport torch, onnxruntime as ort, numpy as np, warnings, time
warnings.simplefilter("ignore")
torch.set_num_threads(1)
class Agg(torch.nn.Module):
    def __init__(s, kind): super().__init__(); s.kind=kind; s.l=torch.nn.Linear(64,16)
    def forward(s, x, edge_index):
        h = s.l(x)
        src, dst = edge_index[0], edge_index[1]
        m = h.index_select(0, src)
        if s.kind=="index_add":
            out = torch.zeros_like(h).index_add_(0, dst, m)
        elif s.kind=="scatter_add":
            out = torch.zeros_like(h).scatter_add_(0, dst.unsqueeze(-1).expand_as(m), m)
        elif s.kind=="index_put":
            out = torch.zeros_like(h).index_put_((dst,), m, accumulate=True)
        elif s.kind=="segment":
            order = torch.argsort(dst, stable=True)
            ms = m.index_select(0, order)
            cs = torch.cat([torch.zeros_like(ms[:1]), ms.cumsum(0)])
            counts = torch.zeros(h.shape[0], dtype=torch.long).index_add_(0, dst, torch.ones_like(dst))
            ptr = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
            out = cs.index_select(0, ptr[1:]) - cs.index_select(0, ptr[:-1])
        return out
def graph(n,e,g):
    return torch.randn(n,64,generator=g), torch.randint(0,n,(2,e),generator=g)
g=torch.Generator().manual_seed(0)
tmp=tempfile.mkdtemp()
for kind in ["index_add","scatter_add","index_put","segment"]:
    m=Agg(kind).eval()
    x,ei=graph(37,90,g)
    path=os.path.join(tmp, f"{kind}.onnx")
    try:
      torch.onnx.export(m,(x,ei),path,dynamo=True,input_names=["x","edge_index"],output_names=["o"],
      dynamic_axes={"x":{0:"n"},"edge_index":{1:"e"},"o":{0:"n"}},external_data=False,verbose=False)
    except Exception as err:
      print(f"{kind:12s} export failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}")
      continue
    so=ort.SessionOptions(); so.intra_op_num_threads=1
    s=ort.InferenceSession(path,so,providers=["CPUExecutionProvider"])
    import onnx; ops=sorted({n.op_type for n in onnx.load(path).graph.node})
    for n,e in [(30,60),(2708,13264),(20000,200000)]:
        x,ei=graph(n,e,g)
        feed={"x":x.numpy(),"edge_index":ei.numpy()}
        ref=m(x,ei).detach().numpy(); d=np.abs(s.run(None,feed)[0]-ref).max()
        reps=200 if n<100 else 20
        for _ in range(3): s.run(None,feed)
        t=time.perf_counter()
        for _ in range(reps): s.run(None,feed)
        to=(time.perf_counter()-t)/reps
        with torch.no_grad():
            for _ in range(3): m(x,ei)
            t=time.perf_counter()
            for _ in range(reps): m(x,ei)
            tt=(time.perf_counter()-t)/reps
        print(f"{kind:12s} N={n:6d} ort {to*1e3:8.3f} ms torch {tt*1e3:8.3f} ms ratio {to/tt:5.2f} diff {d:.1e}", ops if n==30 else "")
