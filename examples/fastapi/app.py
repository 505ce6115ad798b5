"""The recipes the FastAPI question's answers recommend, one app, chosen by the
RECIPE environment variable, serving the shape of the Rust servers' API:
GET /health, GET /work/cpu?units=N, GET /work/io?ms=N, and for the recipes that
run background jobs POST /jobs and GET /jobs/{id}.

  async-inline       CPU work inside `async def` (the question itself)
  def                a plain `def` endpoint (FastAPI runs it in its threadpool)
  run-in-threadpool  `async def` awaiting `run_in_threadpool`
  process-pool       `async def` awaiting `run_in_executor` on a
                     ProcessPoolExecutor with POOL_SIZE processes
  background-tasks   `def` endpoints; POST /jobs hands the job to BackgroundTasks
                     and keeps its status in this process's memory
  rq                 POST /jobs and /work/cpu enqueue to RQ on Redis (REDIS_URL);
                     separate worker processes run them (see queue.sh)

Run with uvicorn; `--workers N` gives the multi-process recipe.
"""

import asyncio
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timezone

from fastapi import BackgroundTasks, FastAPI, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from kernel import burn

RECIPE = os.environ.get("RECIPE", "async-inline")
RECIPES = ("async-inline", "def", "run-in-threadpool", "process-pool", "background-tasks", "rq")
if RECIPE not in RECIPES:
    raise SystemExit(f"RECIPE={RECIPE!r}: choose one of {', '.join(RECIPES)}")

# The same caps as the Rust servers: bad sizes get a 4xx, not an hour of work.
MAX_UNITS = 100_000_000
MAX_MS = 60_000
UNITS = Query(ge=1, le=MAX_UNITS)
MS = Query(ge=0, le=MAX_MS)

pool: ProcessPoolExecutor | None = None
queue = None  # the RQ queue (synchronous Redis client, used from the threadpool)
statuses = None  # an asyncio Redis client, for polling without holding a thread


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global pool, queue, statuses
    if RECIPE == "process-pool":
        pool = ProcessPoolExecutor(max_workers=int(os.environ.get("POOL_SIZE", os.cpu_count())))
    if RECIPE == "rq":
        import redis.asyncio
        from redis import Redis
        from rq import Queue

        queue = Queue(connection=Redis.from_url(os.environ["REDIS_URL"]))
        statuses = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
    yield
    if pool is not None:
        pool.shutdown(cancel_futures=True)


app = FastAPI(lifespan=lifespan)


def stamp(t: datetime | None) -> str | None:
    """A time as the Rust servers write it (RFC 3339, UTC, with a Z)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(timezone.utc)


def cpu_result(units: int, started: float) -> dict:
    checksum = burn(units)
    return {"units": units, "checksum": checksum, "compute_us": int((time.perf_counter() - started) * 1e6)}


@app.get("/health")
async def health():
    return {"status": "ok", "recipe": RECIPE}


# GET /work/cpu: one handler per recipe, so that each reads as the recipe does.

if RECIPE == "async-inline":

    @app.get("/work/cpu")
    async def work_cpu(units: int = UNITS):
        return cpu_result(units, time.perf_counter())

elif RECIPE in ("def", "background-tasks"):

    @app.get("/work/cpu")
    def work_cpu(units: int = UNITS):
        return cpu_result(units, time.perf_counter())

elif RECIPE == "run-in-threadpool":

    @app.get("/work/cpu")
    async def work_cpu(units: int = UNITS):
        return await run_in_threadpool(cpu_result, units, time.perf_counter())

elif RECIPE == "process-pool":

    @app.get("/work/cpu")
    async def work_cpu(units: int = UNITS):
        started = time.perf_counter()
        checksum = await asyncio.get_running_loop().run_in_executor(pool, burn, units)
        return {"units": units, "checksum": checksum, "compute_us": int((time.perf_counter() - started) * 1e6)}

elif RECIPE == "rq":

    @app.get("/work/cpu")
    async def work_cpu(units: int = UNITS):
        job = await run_in_threadpool(queue.enqueue, burn, units)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = await statuses.hget(job.key, "status")
            if status == b"finished":
                return {"units": units, "job": job.id}
            if status in (b"failed", b"stopped", b"canceled"):
                raise HTTPException(500, {"error": f"the job {status.decode()}"})
            await asyncio.sleep(0.005)
        raise HTTPException(504, {"error": "the job did not finish within 60 s"})


@app.get("/work/io")
async def work_io(ms: int = MS):
    await asyncio.sleep(ms / 1000)
    return {"ms": ms}


# Background jobs: POST /jobs {"kind": "cpu", "units": N} -> 202 {"id": ...};
# GET /jobs/{id} -> the Rust servers' job view.


class JobSpec(BaseModel):
    kind: str
    units: int


def view(job_id: str, units: int, status: str, queued, started, finished, result=None, error=None):
    return {
        "id": job_id,
        "status": status,
        "job": {"kind": "cpu", "units": units},
        "queued_at": stamp(queued),
        "started_at": stamp(started),
        "finished_at": stamp(finished),
        "result": result,
        "error": error,
        "attempts": 1 if started else 0,
    }


def check(spec: JobSpec):
    if spec.kind != "cpu" or not 1 <= spec.units <= MAX_UNITS:
        raise HTTPException(400, {"error": f"only cpu jobs of 1 to {MAX_UNITS} units"})


if RECIPE == "background-tasks":
    # In this process's memory: another uvicorn worker does not know these jobs.
    jobs: dict[str, dict] = {}

    def run_job(job_id: str):
        job = jobs[job_id]
        job["status"], job["started"] = "running", now()
        job["result"] = {"checksum": burn(job["units"])}
        job["status"], job["finished"] = "done", now()

    @app.post("/jobs", status_code=202)
    def submit(spec: JobSpec, background: BackgroundTasks):
        check(spec)
        job_id = uuid.uuid4().hex
        jobs[job_id] = {"units": spec.units, "status": "queued", "queued": now(), "started": None, "finished": None}
        background.add_task(run_job, job_id)
        return {"id": job_id}

    @app.get("/jobs/{job_id}")
    async def status(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, {"error": "no such job in this process"})
        return view(job_id, job["units"], job["status"], job["queued"], job["started"], job["finished"], job.get("result"))

elif RECIPE == "rq":
    STATES = {"queued": "queued", "deferred": "queued", "scheduled": "queued", "started": "running", "finished": "done"}

    @app.post("/jobs", status_code=202)
    async def submit(spec: JobSpec):
        check(spec)
        job = await run_in_threadpool(queue.enqueue, burn, spec.units)
        return {"id": job.id}

    @app.get("/jobs/{job_id}")
    async def status(job_id: str):
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            job = await run_in_threadpool(Job.fetch, job_id, queue.connection)
        except NoSuchJobError:
            raise HTTPException(404, {"error": "no such job"})
        state = STATES.get(job.get_status(refresh=False), "failed")
        return view(job_id, job.args[0], state, job.enqueued_at, job.started_at, job.ended_at)
