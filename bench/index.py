"""Benchmark EmbeddingIndex (the code the app uses) at 100k and 1M vectors of 1024 dims.

Data: random but clustered like real crop embeddings. Points are drawn from a
Gaussian mixture in a 64-d latent space (2,000 components with spreads varying
4x), mapped linearly into 1024 dims, given isotropic noise and L2-normalised.
Queries are 1,000 fresh draws from the same mixture, never added to the index.

Measures: build time (add + train + nprobe calibration), resident memory
(process RSS growth and the index's own estimate), single-query latency
(p50/p95 over the queries, one search call each) and recall@10 against exact
brute-force search. Ends with one JSON line.

With ``--sync`` it measures the app's index sync instead (labeller.training.services on a
throw-away SQLite database): a project holding 1k, then 100k confirmed boxes, 10 new boxes
per round, the time of ``index_sync`` (random vectors stand in for the embeddings, so the
figure is the index's own cost: reading the changes, the delta, storage, the cache).

    .venv/bin/python bench/index.py            # 100k and 1M (~24 GB RAM machine, a few minutes)
    .venv/bin/python bench/index.py --quick    # 100k only
    .venv/bin/python bench/index.py --sync     # index sync: 10 changes at 1k and 100k boxes
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from proposals.index import EmbeddingIndex, exact_search  # noqa: E402

DIM = 1024
LATENT_DIM = 64
COMPONENTS = 2000
NOISE = 0.15
QUERIES = 1000
K = 10
GENERATION_CHUNK = 100_000


class ClusteredEmbeddings:
    """Draws unit vectors from one fixed mixture (same seed -> same mixture)."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.means = rng.normal(size=(COMPONENTS, LATENT_DIM)).astype(np.float32)
        self.spreads = rng.uniform(0.25, 1.0, size=COMPONENTS).astype(np.float32)
        self.projection = (rng.normal(size=(LATENT_DIM, DIM)) / np.sqrt(LATENT_DIM)).astype(np.float32)

    def draw(self, count: int, seed: int) -> np.ndarray:
        """float32 [count, DIM], unit rows."""
        rng = np.random.default_rng(seed)
        out = np.empty((count, DIM), dtype=np.float32)
        for start in range(0, count, GENERATION_CHUNK):
            n = min(GENERATION_CHUNK, count - start)
            component = rng.integers(0, COMPONENTS, n)
            latent = self.means[component] + self.spreads[component, None] * rng.standard_normal(
                (n, LATENT_DIM), dtype=np.float32)
            block = latent @ self.projection + NOISE * rng.standard_normal((n, DIM), dtype=np.float32)
            out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run(size: int, mixture: ClusteredEmbeddings, queries: np.ndarray) -> dict:
    database = mixture.draw(size, seed=size)
    ids = np.arange(size, dtype=np.int64) * 7 + 3  # ids are not row numbers, as in the app
    rss_before = resident_bytes()
    started = time.perf_counter()
    index = EmbeddingIndex(DIM)
    index.add(ids, database)
    build_s = time.perf_counter() - started
    rss_growth = resident_bytes() - rss_before

    latencies = []
    found = np.empty((len(queries), K), dtype=np.int64)
    for warmup in queries[:20]:
        index.search(warmup[None], K)
    for row, query in enumerate(queries):
        tick = time.perf_counter()
        found[row] = index.search(query[None], K)[1][0]
        latencies.append((time.perf_counter() - tick) * 1000)

    _, exact_rows = exact_search(database, queries, K)
    recall = float(np.mean([len(set(f.tolist()) & set(ids[r].tolist())) / K for f, r in zip(found, exact_rows)]))
    result = {
        "size": size, "kind": str(index.kind), "nprobe": index.nprobe,
        "calibrated_recall": round(index.calibrated_recall, 4), "build_s": round(build_s, 1),
        "rss_growth_gb": round(rss_growth / 1e9, 2), "index_memory_gb": round(index.memory_bytes() / 1e9, 2),
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p95_ms": round(float(np.percentile(latencies, 95)), 3), "recall_at_10": round(recall, 4),
    }
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


SYNC_SIZES = (("1k", 1_000), ("100k", 100_000))
SYNC_ROUNDS = 15
SYNC_CHANGES = 10
BOXES_PER_FRAME = 50


def bench_sync() -> dict:
    """Median and p95 time of index_sync for SYNC_CHANGES new boxes, per index size."""
    import tempfile

    data_dir = tempfile.mkdtemp(prefix="labeller-bench-sync-")
    os.environ.update(DJANGO_SETTINGS_MODULE="labeller.settings.test", LABELLER_DATA_DIR=data_dir,
                      LABELLER_MEDIA_ROOT=f"{data_dir}/media", LABELLER_FEATURE_WEIGHTS="none")
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    from labeller import ml
    from labeller.annotations.models import Annotation, AnnotationStatus, Label
    from labeller.annotations.services import Box, annotation_create
    from labeller.media.models import Frame
    from labeller.training import services
    from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

    call_command("migrate", verbosity=0)
    dim = ml.feature_extractor().dim

    def random_embeddings(annotation_ids):
        ids = np.array(sorted(Annotation.objects.filter(pk__in=annotation_ids).values_list("pk", flat=True)), np.int64)
        vectors = np.random.default_rng(int(ids.sum()) if len(ids) else 0).standard_normal((len(ids), dim))
        return ids, (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    services._embed_annotations = random_embeddings
    organization = OrganizationFactory(slug="bench")
    user = UserFactory(username="bench")
    MembershipFactory(user=user, organization=organization)
    summary = {}
    for label, size in SYNC_SIZES:
        project = ProjectFactory(organization=organization)
        labels = [Label.objects.create(project=project, name=f"class{i}") for i in range(10)]
        frames = Frame.objects.bulk_create(
            Frame(project=project, index=i, width=640, height=480, image="bench.jpg", thumbnail="bench.jpg")
            for i in range(size // BOXES_PER_FRAME)
        )
        Annotation.objects.bulk_create(
            (Annotation(project=project, frame=frames[i // BOXES_PER_FRAME], label=labels[i % 10], x1=1, y1=1, x2=9, y2=9,
                        status=AnnotationStatus.CONFIRMED) for i in range(size)),
            batch_size=5000,
        )
        services.EMBED_PER_SYNC = size  # build the whole index in one go
        started = time.perf_counter()
        services.index_sync(project_id=project.pk)
        services.EMBED_PER_SYNC = 256
        build_s = time.perf_counter() - started
        annotation_create(frame=frames[0], actor=user, box=Box(2, 2, 12, 12), label=labels[0])
        services.index_sync(project_id=project.pk)  # the first small sync compacts the big first segment
        timings = []
        for round_ in range(SYNC_ROUNDS):
            for change in range(SYNC_CHANGES):
                annotation_create(frame=frames[(round_ * 7 + change) % len(frames)], actor=user,
                                  box=Box(10 + change, 10, 30 + change, 40), label=labels[change % 10])
            tick = time.perf_counter()
            result = services.index_sync(project_id=project.pk)
            timings.append((time.perf_counter() - tick) * 1000)
            assert result.added == SYNC_CHANGES, result
        services.ProjectIndex.objects.filter(project=project).update(reconciled_at=None)
        tick = time.perf_counter()
        services.index_sync(project_id=project.pk)  # the periodic comparison of every annotation
        reconcile_ms = (time.perf_counter() - tick) * 1000
        result = {
            "build_s": round(build_s, 1), "sync_ms_p50": round(float(np.percentile(timings, 50)), 1),
            "sync_ms_p95": round(float(np.percentile(timings, 95)), 1), "reconcile_ms": round(reconcile_ms),
        }
        print(json.dumps({"size": size, **result}), file=sys.stderr, flush=True)
        summary |= {f"{key}_{label}": value for key, value in result.items()}
        gc.collect()
    return {"sync_changes": SYNC_CHANGES, "sync_rounds": SYNC_ROUNDS, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k vectors only")
    parser.add_argument("--sync", action="store_true", help="the app's index sync at 1k and 100k boxes instead")
    arguments = parser.parse_args()
    if arguments.sync:
        print(json.dumps(bench_sync() | {"load_average": [round(x, 2) for x in os.getloadavg()]}))
        return
    mixture = ClusteredEmbeddings()
    queries = mixture.draw(QUERIES, seed=1)
    summary = {"dim": DIM, "queries": QUERIES, "data": "gaussian mixture, 64-d latent, 1024-d, L2-normalised"}
    for label, size in [("100k", 100_000)] + ([] if arguments.quick else [("1m", 1_000_000)]):
        result = run(size, mixture, queries)
        summary |= {f"{key}_{label}": value for key, value in result.items() if key != "size"}
        gc.collect()
    print(json.dumps(summary | {"load_average": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
