"""``rsretrieval bench <name>``: the benchmarks of our own code (logic in :mod:`rsretrieval.benchmarks`).

Each prints its measurements (JSON or a table) and returns them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from rsretrieval.cli.common import RAW, add_benchmark_args, load_user_config

EMBED_HELP = """Ray Data embedding stage vs a bare torch loop (same model, images, batch size, run).

  rsretrieval bench embed --images 1000 --batch-size 64 --concurrency 2
"""


def add_embed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", type=int, default=600, help="synthrs test images to embed")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--concurrency", type=int, default=1, help="embedding actors")
    p.add_argument("--torch-threads", type=int, default=None, help="torch threads per actor")
    p.add_argument("--num-gpus-per-actor", type=float, default=0.0)
    p.add_argument("--cache-dir", type=Path, default=None, help="where synthrs is written (default: the cache dir)")


def embed_cmd(args: argparse.Namespace) -> dict[str, float]:
    import tempfile

    from rsretrieval.benchmarks.embed import random_rs_tiny_checkpoint, run
    from rsretrieval.config import EmbedConfig, RayConfig, SynthRSOptions, default_cache_dir
    from rsretrieval.data.registry import load_synthrs_dataset
    from rsretrieval.pipelines.runtime.ray_session import init_ray

    opts = SynthRSOptions(n_train=0, n_val=0, n_test=args.images)
    ds = load_synthrs_dataset(opts, args.cache_dir or default_cache_dir()).split("test")
    init_ray(RayConfig())
    cfg = EmbedConfig(batch_size=args.batch_size, concurrency=args.concurrency,
                      torch_threads=args.torch_threads, num_gpus_per_actor=args.num_gpus_per_actor)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = random_rs_tiny_checkpoint(Path(tmp) / "rs-tiny-random.pt")
        result = run(ds.images, "rs-tiny", ckpt, cfg)
    print(json.dumps(result, indent=2))
    return result


GENERATION_HELP = """Generation under a requests/min quota, injected 429/5xx, and a job killed half-way.

  rsretrieval bench generation                       # 600 RPM quota, 8 actors, 30% faults
  rsretrieval bench generation --rows 1200 --actors 8 --quota-rpm 600

Runs against the fake Gemini server on 127.0.0.1 (no key, no cost); prints measured ratios.
"""


def add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=600, help="inputs of the quota phase (600 at 600 RPM = one minute)")
    p.add_argument("--actors", type=int, default=8)
    p.add_argument("--quota-rpm", type=int, default=600)
    p.add_argument("--fault-rows", type=int, default=300)
    p.add_argument("--fault-rate", type=float, default=0.3, help="share of requests answered 429 or 5xx")
    p.add_argument("--kill-rows", type=int, default=60)
    p.add_argument("--phases", default="quota,faults,kill")


def generation_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from rsretrieval.benchmarks.generation import bench

    a = args
    out = bench(a.rows, a.actors, a.quota_rpm, a.fault_rows, a.fault_rate, a.kill_rows, a.phases.split(","))
    print(json.dumps(out, indent=2))
    return out


GMN_HELP = """GMN all-pairs scoring (G2G / VG2VG, thesis eqs. 3-5) vs the fp32 matmul roofline of its node similarities.

  rsretrieval bench gmn                          # RSICD size: 5,345 x 1,069, ~20 x ~30 nodes, D=384
  rsretrieval bench gmn --queries 500 --images 200
  rsretrieval bench gmn --device cuda

One run on seeded random unit vectors with an untrained (seeded) GMN: prints JSON with the GMN and
roofline seconds, their ratio (target <= 2), a breakdown, and the per-pair reference extrapolated.
"""


def add_gmn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--q-nodes", type=int, default=20, help="mean query graph size (uniform in mean/2..3 mean/2)")
    p.add_argument("--d-nodes", type=int, default=30, help="mean image graph size")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--chunk-size", type=int, default=None, help="queries per block (default: GMNConfig.chunk_size)")
    p.add_argument("--doc-block", type=int, default=None, help="documents per block (default: automatic)")
    p.add_argument("--bins", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--hist-range", choices=["fixed", "dynamic"], default=None)
    p.add_argument("--soft-binning", action="store_true")
    p.add_argument("--no-global", action="store_true", help="G2G (no sim_vec) instead of VG2VG")
    p.add_argument("--sample-pairs", type=int, default=200, help="pairs timed with the per-pair reference")
    p.add_argument("--repeats", type=int, default=2, help="GMN runs timed (the best is kept)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def gmn_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from rsretrieval.benchmarks.gmn import bench
    from rsretrieval.config import GMNConfig

    a = args
    overrides = {k: v for k, v in {"bins": a.bins, "heads": a.heads, "hidden": a.hidden,
                                   "hist_range": a.hist_range}.items() if v is not None}
    cfg = GMNConfig(**overrides, soft_binning=a.soft_binning, use_global=not a.no_global)
    result = bench(a.queries, a.images, a.q_nodes, a.d_nodes, a.dim, cfg, a.chunk_size, a.doc_block,
                   a.sample_pairs, a.repeats, a.device, a.seed)
    print(json.dumps(result, indent=2))
    return result


HUNGARIAN_HELP = """Hungarian G2G scoring (thesis 5.3.2) vs a per-pair scipy loop, 1 worker vs all cores.

  rsretrieval bench hungarian                              # RSICD size: 5,345 x 1,069, ~20 x ~30 nodes, D=384
  rsretrieval bench hungarian --queries 500 --images 200   # quick

Ratios are measured in one run on synthetic vectors; the per-pair loop is timed on a sample of pairs
and extrapolated (the output says so). No absolute target (machines differ).
"""


def add_hungarian_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--q-nodes", type=float, default=20, help="mean query graph size")
    p.add_argument("--d-nodes", type=float, default=30, help="mean image graph size")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--workers", type=int, default=0, help="processes for the parallel run; 0 = all cores")
    p.add_argument("--normalise", choices=("matched", "query"), default="matched")
    p.add_argument("--loop-pairs", type=int, default=20_000, help="~pairs timed in the per-pair loop (whole queries)")
    p.add_argument("--check-pairs", type=int, default=2000, help="pairs checked against the reference")
    p.add_argument("--shortcut-queries", type=int, default=300, help="queries in the shortcut on/off runs")
    p.add_argument("--seed", type=int, default=0)


def hungarian_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from rsretrieval.benchmarks.hungarian import bench

    a = args
    result = bench(a.queries, a.images, a.q_nodes, a.d_nodes, a.dim, a.workers, a.normalise, a.loop_pairs,
                   a.check_pairs, a.shortcut_queries, a.seed)
    print(json.dumps(result, indent=2))
    return result


LATE_INTERACTION_HELP = """Q-MAM late interaction (V2S/S2V/S2S scoring) vs the fp32 GEMM roofline and a per-pair loop.

  rsretrieval bench late-interaction              # RSICD size: 5,345 x 1,069, 6 x 10 scenes, D=512
  rsretrieval bench late-interaction --device cuda

Ratios are measured in one run on synthetic vectors; no absolute target (machines differ).
"""


def add_late_interaction_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--query-scenes", type=int, default=6)
    p.add_argument("--image-scenes", type=int, default=10)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--chunk-size", type=int, default=512, help="queries per block")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loop-sample", type=int, default=20, help="queries timed in the per-pair loop")
    p.add_argument("--device", default="cpu")
    p.add_argument("--variable", action="store_true", help="set sizes uniform in 1..max (padded path)")


def late_interaction_cmd(args: argparse.Namespace) -> dict[str, float]:
    from rsretrieval.benchmarks.late_interaction import bench

    a = args
    result = bench(a.queries, a.images, a.query_scenes, a.image_scenes, a.dim, a.chunk_size, a.repeats,
                   a.loop_sample, a.device, variable=a.variable)
    print(json.dumps(result, indent=2))
    return result


SCALE_HELP = """The two-stage path (V2V shortlist + S2S / G2G / VG2VG rerank) at 10k / 100k / 1M images.

  rsretrieval bench scale                              # 10k, 100k, 1M (writes ~9 GB of synthetic corpora)
  rsretrieval bench scale --sizes 10000 100000 --queries 500

Synthetic vectors, no pixels: wall time, ms per query and peak memory per process are real; recall
only shows the shortlist ceiling at work. See rsretrieval/benchmarks/scale.py.
"""


def add_scale_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="images per corpus")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=100, help="shortlist size")
    p.add_argument("--data-dir", type=Path, default=None, help="where corpora are written (default <cache>/scale)")
    p.add_argument("--full-matrix-max", type=int, default=100_000, help="largest size also scored as a full matrix")
    p.add_argument("--out", type=Path, default=None, help="CSV of all rows")


def scale_cmd(args: argparse.Namespace) -> Any:
    from rsretrieval.benchmarks.scale import bench

    return bench(args.sizes, args.data_dir, args.queries, args.k, args.full_matrix_max, args.out)


TABLE14_HELP = """Absolute similarity times at RSICD test size next to the thesis' Table 14 (A6000).

  rsretrieval bench table14                 # CUDA when available, else the CPU (the device is printed)
  rsretrieval bench table14 --device cuda --repeats 10 --out table14.csv

Seeded random unit vectors (timings real, scores not): cosine (V2V), S2S (Q-MAM, 6 x 10 scenes,
D = 512) and the VG2VG GMN (~20 x ~30 nodes, D = 384) over 5,345 captions x 1,069 images. Each
method runs --repeats times after a warm-up: mean ± sd (sample sd; 0 for one repeat) next to the
thesis' own mean ± sd. See rsretrieval/benchmarks/table14.py.
"""


def add_table14_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    p.add_argument("--queries", type=int, default=5345)
    p.add_argument("--images", type=int, default=1069)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per method after one warm-up (mean ± sd)")
    p.add_argument("--out", type=Path, default=None, help="CSV of the rows")


def table14_cmd(args: argparse.Namespace) -> Any:
    import pandas as pd

    from rsretrieval.benchmarks.table14 import bench

    df = pd.DataFrame(bench(args.queries, args.images, device=args.device, repeats=args.repeats))
    print("seeded random vectors: timings are real, scores are not; thesis figures: NVIDIA A6000, RSICD test")
    print(f"seconds, mean ± sd over {args.repeats} repeat(s) after a warm-up:")
    print(df[["method", "queries", "images", "device", "repeats", "ours", "thesis_a6000", "ratio_to_thesis"]]
          .round(3).to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)
    return df


TRAIN_HELP = """Graph training per epoch, in-process loop vs Ray Train with 1 and 2 workers (one run).

  rsretrieval bench train                      # the embedded default's training data (synthrs train)
  rsretrieval bench train --synthetic 2000     # synthetic graphs: no dataset preparation

Prints seconds per epoch, the speed-up over 1 worker, the fit wall time (Ray Train start-up
included) and the best validation mR; --json writes the numbers.
"""


def add_train_bench_args(p: argparse.ArgumentParser) -> None:
    add_benchmark_args(p)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts (0 = in-process loop)")
    p.add_argument("--graphs", default=None, help="image-graph source (default: the generated graphs)")
    p.add_argument("--synthetic", type=int, default=None, metavar="N", help="N synthetic image graphs instead of a dataset")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")


def train_bench_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from rsretrieval.benchmarks.train import bench, print_report

    a = args
    cfg = load_user_config(a.config, list(a.overrides) + ([f"output_dir={a.output_dir}"] if a.output_dir else []))
    result = bench(cfg, a.epochs, tuple(a.workers), a.graphs, a.synthetic)
    print_report(result)
    if a.json:
        a.json.write_text(json.dumps(result, indent=2))
    return result


# name -> (one-line help, description, add arguments, run)
BENCHES: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any]]] = {
    "embed": ("Ray Data embedding stage vs a bare torch loop", EMBED_HELP, add_embed_args, embed_cmd),
    "generation": ("generation vs the fake Gemini: quota, 429/5xx, a kill", GENERATION_HELP,
                   add_generation_args, generation_cmd),
    "gmn": ("GMN all-pairs scoring vs its matmul roofline", GMN_HELP, add_gmn_args, gmn_cmd),
    "hungarian": ("Hungarian G2G scoring vs a per-pair scipy loop", HUNGARIAN_HELP, add_hungarian_args, hungarian_cmd),
    "late-interaction": ("Q-MAM late interaction vs the GEMM roofline", LATE_INTERACTION_HELP,
                         add_late_interaction_args, late_interaction_cmd),
    "scale": ("shortlist + rerank at 10k / 100k / 1M synthetic images", SCALE_HELP, add_scale_args, scale_cmd),
    "table14": ("similarity times at RSICD size vs the thesis' Table 14", TABLE14_HELP, add_table14_args,
                table14_cmd),
    "train": ("graph training per epoch: loop vs Ray Train workers", TRAIN_HELP, add_train_bench_args,
              train_bench_cmd),
}


CORPUS_HELP = """The benchmark job at NWPU-Captions shape (31,500 x FRACTION synthrs test images, 5 + 1 captions each) on
the two-stage path: per stage rows, seconds, rows/s; the peak memory of every process kind; the driver's
memory per step (driver_memory.csv of the run); with --bare-loops, the bare-loop equivalent of each stage.

  rsretrieval bench corpus --fraction 0.1 --cache-dir /data/rsr-cache --output-dir /data/rsr-runs
  rsretrieval bench corpus --fraction 1.0 --shortlist-k 10 --gmn-checkpoint runs/x/graph_models/y.pt --bare-loops

Figures: docs/scale.md.
"""


def add_corpus_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fraction", type=float, default=0.1, help="share of the 31,500 NWPU images (1.0 = full size)")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache (default: the cache dir)")
    p.add_argument("--output-dir", type=Path, default=Path("runs"), help="where the run folder goes")
    p.add_argument("--shortlist-k", type=int, default=100, help="V2V shortlist that S2S / G2G / VG2VG rerank")
    p.add_argument("--gmn-checkpoint", type=Path, default=None,
                   help="trained graph matchers (graph_models/*.pt of a run); default: Hungarian only")
    p.add_argument("--modes", nargs="+", default=["v2v", "s2s", "g2g", "vg2vg"],
                   choices=["v2v", "s2s", "g2g", "vg2vg"], help="matching modes (default: all four)")
    p.add_argument("--bare-loops", action="store_true",
                   help="after the run, time bare-loop equivalents of its stages on a sample (ratios ours / bare)")
    p.add_argument("--json", type=Path, default=None, help="also write the measurements to this JSON file")


def corpus_cmd(args: argparse.Namespace) -> dict[str, Any]:
    from rsretrieval.benchmarks.corpus_scale import format_result, run
    from rsretrieval.config import default_cache_dir

    res = run(args.fraction, args.cache_dir or default_cache_dir(), args.output_dir, args.shortlist_k,
              args.gmn_checkpoint, modes=tuple(args.modes))
    print(format_result(res))
    if args.bare_loops:
        from rsretrieval.benchmarks.corpus_bare import bare_table, format_bare
        from rsretrieval.benchmarks.corpus_scale import corpus_config

        cfg = corpus_config(args.fraction, args.cache_dir or default_cache_dir(), args.output_dir, args.shortlist_k,
                            args.gmn_checkpoint, tuple(args.modes))
        res["bare_loops"] = bare_table(Path(res["run_dir"]), cfg)
        print("\nBare-loop equivalents (sampled after the run, same machine; ratio = bare seconds / ours):\n"
              + format_bare(res["bare_loops"]))
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=2))
    return res


BENCHES["corpus"] = ("the benchmark job at NWPU-Captions shape: stages and memory", CORPUS_HELP, add_corpus_args,
                     corpus_cmd)


def add_bench_args(p: argparse.ArgumentParser) -> None:
    """One sub-subcommand per benchmark of :data:`BENCHES`."""
    sub = p.add_subparsers(dest="bench", required=True, metavar="{" + ",".join(BENCHES) + "}")
    for name, (help_, description, add_args, _) in BENCHES.items():
        add_args(sub.add_parser(name, help=help_, description=description, formatter_class=RAW))


def bench_cmd(args: argparse.Namespace) -> Any:
    """Run the benchmark named by ``args.bench``; returns its measurements."""
    return BENCHES[args.bench][3](args)
