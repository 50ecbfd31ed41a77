"""``/jobs``: the visitor's Slurm jobs (``slurm.jobs``) with a Cancel button for the live ones
(``slurm.cancel``); served only where the Slurm plugin is installed. A refusal (Slurm not
configured, a job already ended) is shown in the page in the operation's words."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ds01_core.api import ServiceError
from ds01_web.dashboard.data import fetch
from ds01_web.errors import WebError
from ds01_web.site import NO_STORE, Visitor, action, page, render

POLL = 15


def _installed(visitor: Visitor) -> None:
    if not visitor.site.has_operation("slurm.jobs"):
        raise WebError(
            "not_found", "batch jobs are not served here (the Slurm plugin is not installed)"
        )


def job_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        state = str(row.get("state") or "").upper()
        out.append(
            {
                "id": str(row.get("job_id") or ""),
                "name": row.get("name") or "-",
                "state": state.lower().replace("_", " ") or "unknown",
                "time": row.get("run_time") or "-",
                "limit": row.get("time_limit") or "-",
                "gres": row.get("gres") or "-",
                "where": row.get("nodes") or row.get("reason") or "-",
                "live": not row.get("final", True),  # Slurm's plugin says which are over
            }
        )
    return out


async def _table(visitor: Visitor) -> dict[str, Any]:
    answer = await fetch(visitor, "slurm.jobs")
    return {"error": answer.error, "rows": job_rows(answer.value or []) if answer.ok else []}


@page
async def jobs(request: Request, visitor: Visitor) -> Response:
    _installed(visitor)
    template = "user/_jobs.html" if request.headers.get("HX-Request") else "user/jobs.html"
    done = request.query_params.get("cancelled")
    return render(
        request,
        template,
        visitor,
        title="Jobs",
        jobs=await _table(visitor),
        poll=POLL,
        flash=None if not done else {"text": f"Job {done} was cancelled.", "error": False},
    )


@action()
async def cancel(request: Request, visitor: Visitor, form: FormData) -> Response:
    _installed(visitor)
    job = request.path_params["job"]
    try:
        await visitor.call("slurm.cancel", job=job)
    except ServiceError as exc:
        if request.headers.get("HX-Request"):
            flash = {"text": exc.message, "error": True}
            return render(
                request,
                "user/_jobs.html",
                visitor,
                exc.status,  # htmx swaps refusals too (base.html)
                jobs=await _table(visitor),
                poll=POLL,
                flash=flash,
            )
        return render(
            request,
            "user/jobs.html",
            visitor,
            exc.status,
            title="Jobs",
            jobs=await _table(visitor),
            poll=POLL,
            flash={"text": exc.message, "error": True},
        )
    if request.headers.get("HX-Request"):
        flash = {"text": f"Job {job} was cancelled.", "error": False}
        return render(
            request, "user/_jobs.html", visitor, jobs=await _table(visitor), poll=POLL, flash=flash
        )
    return RedirectResponse(f"/jobs?cancelled={job}", 303, headers=NO_STORE)


ROUTES: list[BaseRoute] = [
    Route("/jobs", jobs, methods=["GET"]),
    Route("/jobs/{job}/cancel", cancel, methods=["POST"]),
]
