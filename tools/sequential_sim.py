# Error rates and sample sizes of the sequential accuracy-constraint test (src/Qsvit/Evaluation/SequentialTest.cs,
# transcribed): 400 seeded runs per case on 5,000 paired images. Usage: python3 tools/sequential_sim.py
import math, random
def looks(total, first=100, growth=1.5):
    out=[]; end=first
    while end < total:
        out.append(int(end)); end=math.ceil(end*growth)
    out.append(total); return out
def run(ref, cand, maxdrop, alpha):
    m=-maxdrop/100; thr=math.log(1/alpha); N=len(ref)
    lp=lf=0.0; s=0.0; mean=0.0; sq=0.0; n=0; rr=sum(ref)
    L=looks(N); li=0
    for i in range(N):
        r=ref[i]; c=cand[i]
        if r: rr-=1
        d=(1 if c else 0)-(1 if r else 0)
        mu=s/(n+1); var=(0.25+sq)/(n+1); e=mu-m; bet=e/(var+e*e)
        pb=min(max(bet,0),0.5/(1+m)); fb=min(max(-bet,0),0.5/(1-m))
        lp+=math.log(1+pb*(d-m)); lf+=math.log(1-fb*(d-m))
        n+=1; s+=d; up=s/n; sq+=(d-mean)*(d-up); mean=up
        v=None
        if lp>=thr: v='P'
        elif lf>=thr: v='F'
        else:
            need=m*N-1e-9
            if s-rr>=need: v='P'
            elif s+(N-n-rr)<need: v='F'
            if v: return v, False, n
        if v: 
            end=next(x for x in L if x>=n)
            return v, end<N, end
    return ('P' if s>=m*N-1e-9 else 'F'), False, N
def pairs(rng,n,delta,disc):
    up=(disc+delta)/2; down=(disc-delta)/2; R=[];C=[]
    for i in range(n):
        u=rng.random()
        if u<up: R.append(False); C.append(True)
        elif u<up+down: R.append(True); C.append(False)
        else:
            b=rng.random()<0.7; R.append(b); C.append(b)
    return R,C
rng=random.Random(5)
for maxdrop,alpha,disc in [(1.5,0.05,0.06),(5,0.05,0.15),(5,0.05,0.06)]:
    runs=400; wf=wp=0; imgs=[]
    for k in range(runs):
        R,C=pairs(rng,5000,-maxdrop/100,disc); v,early,n=run(R,C,maxdrop,alpha)
        if early and v=='F': wf+=1
        R,C=pairs(rng,5000,-maxdrop/100-0.001,disc); v,early,n=run(R,C,maxdrop,alpha)
        if early and v=='P': wp+=1
        R,C=pairs(rng,5000,0.0,disc); v,early,n=run(R,C,maxdrop,alpha); imgs.append(n)
    imgs.sort()
    print(f"maxdrop {maxdrop} alpha {alpha} discordance {disc}: early wrong fails at boundary {wf/runs:.3f}, early wrong passes just over {wp/runs:.3f}; no-change candidate decided at median {imgs[len(imgs)//2]} images")
