import time, torch, numpy as np, sys, collections
torch.set_num_threads(1)
sys.path.insert(0, '/work/main')
from stream.settings import Settings
from stream.pipeline import build_runner
import models.ticks as mt, models.scoring as ms
src = sys.argv[1] if len(sys.argv) > 1 else 'ticks'
B = int(sys.argv[2]) if len(sys.argv) > 2 else 4
r = build_runner(Settings(device='cpu', sources=(src,)), src)
f = r.features
acc = collections.defaultdict(float); cnt = collections.defaultdict(int)
def wrap(obj, name, key):
    fn = getattr(obj, name)
    def g(*a, **k):
        t = time.thread_time_ns(); 
        try: return fn(*a, **k)
        finally: acc[key] += time.thread_time_ns() - t; cnt[key] += 1
    setattr(obj, name, g)
if hasattr(f, 'featurise'): wrap(f, 'featurise', 'rules')
wrap(f.scorer, 'pre', 'scorer.pre'); wrap(f.scorer, 'post', 'scorer.post')
wrap(r._step_model, 'step', 'model.step')
wrap(r.slab, 'gather', 'gather'); wrap(r.slab, 'scatter', 'scatter')
wrap(r, '_wave', 'wave')
from stream.sources.simulator import Simulator
from models.types import Batch
sim = Simulator(src, B, seed=1)
t0 = time.time() - 1e5
def batch(k):
    ev = list(sim.round(t0 + k * 0.05))
    import json
    rows = []
    for e in ev:
        v = json.loads(e.value()); 
        rows.append(e)
    return ev
# use pipeline-level: simpler use Runner with decoded values via SourcePipeline
from stream.pipeline import SourcePipeline
from stream.metrics import Metrics
from types import SimpleNamespace
pipe = SourcePipeline(src, r, Settings(device='cpu', sources=(src,)), Metrics())
off = 0
def recs(k):
    global off
    out = []
    for e in sim.round(t0 + k * 0.05):
        out.append(SimpleNamespace(topic='t', partition=0, offset=off, key=e.key(), value=e.value(), timestamp=0)); off += 1
    return out
for k in range(400): pipe.process(recs(k), now=time.time())
acc.clear(); cnt.clear()
t = time.thread_time_ns(); n = 0
for k in range(400, 800):
    rr = recs(k); n += len(rr); pipe.process(rr, now=time.time())
tot = time.thread_time_ns() - t
w = cnt['wave']
print(src, 'events', n, 'waves', w, 'total us/batch', tot/400/1e3, 'us per wave:')
for k, v in acc.items(): print(f'  {k:12s} {v/max(w,1)/1e3:8.1f} us/wave  calls {cnt[k]}')
