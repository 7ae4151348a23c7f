"""The operator actions: requeue dead letters, run a periodic job now, retry / cancel / delete a
job, pause and resume the queue.

All are POST only, and go through ``allowed`` first: actions on (``--allow-actions``), this
dashboard's own origin, the CSRF token of this process; a request that fails one is refused
with 403 and a line saying why. Each action is bounded (``dashboard.max_action_items``
entries per call), done by the jobs layer (``jobs.requeue``, ``jobs.admin``,
``jobs.queue_control``: race-safe against the workers) and logged with who asked. Its answer is
what the operator sees: a browser is sent back to the page it came from, which shows what was
done or why not (``notices``); a client asking for JSON gets the results (200 when everything
asked was done, 409 when something was refused, 404 when it named nothing there).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from cache.errors import CacheError, InvalidKeyError
from dashboard.context import context, state, who
from dashboard.failures import describe_failure
from dashboard.forms import FormError, first, read_form
from dashboard.notices import Notice
from dashboard.security import same_origin
from jobs.admin import ActionResult, JobAdmin, Verdict
from jobs.client import enqueue_job
from jobs.queue_control import pause, resume
from jobs.requeue import RequeueError, requeue_dead_letters

log = logging.getLogger("seen.dashboard.actions")

Form = dict[str, list[str]]


def refuse(request: Request, status: int, reason: str) -> Response:
    log.warning("dashboard: action %s from %s refused: %s", request.url.path, who(request), reason)
    return PlainTextResponse(reason + "\n", status)


async def allowed(request: Request) -> tuple[Form | None, Response | None]:
    """The form when this request may act; else the refusal to send."""
    ctx = context(request)
    if not ctx.actions:
        return None, refuse(request, 403, "read-only dashboard (start it with --allow-actions)")
    why = same_origin(request, ctx.hosts)
    if why is not None:
        return None, refuse(request, 403, f"refused: {why}")
    try:
        form = await read_form(request)
    except FormError as exc:
        return None, refuse(request, 400, str(exc))
    if not ctx.guard.check_csrf(next(iter(form.get("csrf", [])), None)):
        return None, refuse(request, 403, "refused: missing or wrong CSRF token")
    return form, None


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def answer(request: Request, results: list[ActionResult], back: str) -> Response:
    """What the client sees of ``results``: JSON, or the page ``back`` with a notice."""
    for r in results:
        level = logging.INFO if r.ok else logging.WARNING
        log.log(
            level,
            "dashboard action by %s: %s %s: %s (%s)",
            who(request),
            r.action,
            r.job_id,
            r.verdict.value,
            r.message,
        )
    if wants_json(request):
        status = 200
        if any(r.verdict is Verdict.REFUSED for r in results):
            status = 409
        elif results and all(r.verdict is Verdict.NOT_FOUND for r in results):
            status = 404
        body = {
            "results": [r.as_dict() for r in results],
            "done": [r.job_id for r in results if r.ok],
            "refused": {r.job_id: r.message for r in results if not r.ok},
        }
        return JSONResponse(body, status)
    response = RedirectResponse(back, 303)
    lines = tuple(f"{r.action} {r.job_id}: {r.message}" for r in results)
    notice = Notice(all(r.ok for r in results), lines or ("nothing was done",))
    context(request).notices.put(response, notice, secure=request.url.scheme == "https")
    return response


def store_failure(request: Request, exc: CacheError) -> Response:
    status, text = describe_failure(exc)
    log.warning("dashboard: action %s from %s failed: %s", request.url.path, who(request), text)
    return PlainTextResponse(text + "\n", status)


async def requeue(request: Request) -> Response:
    """Requeue the dead letters the form names (``id``, repeated), under their original ids
    unless ``new_id`` is set."""
    form, refusal = await allowed(request)
    if form is None:
        return refusal or refuse(request, 400, "no form")
    ctx, s = context(request), state(request)
    try:
        results = await requeue_dead_letters(
            s.manager,
            s.queue,
            ctx.layout,
            form.get("id", []),
            known=ctx.functions,
            limit=ctx.cfg.max_action_items,
            who=f"dashboard client {who(request)}",
            new_id=first(form, "new_id") == "1",
        )
    except RequeueError as exc:
        return refuse(request, 400, str(exc))
    except CacheError as exc:
        return store_failure(request, exc)
    return answer(request, results, "/dead-letters")


async def run(request: Request) -> Response:
    """Enqueue one manual run of the periodic job the form names."""
    form, refusal = await allowed(request)
    if form is None:
        return refusal or refuse(request, 400, "no form")
    ctx, s = context(request), state(request)
    name = first(form, "name")
    if name not in ctx.periodic:
        return refuse(request, 400, f"{name[:100]!r} is not a periodic job of this deployment")
    try:
        job_id = await enqueue_job(s.queue, name, layout=ctx.layout)
    except CacheError as exc:
        return store_failure(request, exc)
    if job_id is None:  # a fresh uuid never exists already
        result = ActionResult("run", name, Verdict.REFUSED, "not enqueued")
    else:
        result = ActionResult("run", name, Verdict.DONE, f"enqueued as job {job_id}", job_id)
    if wants_json(request):
        response = answer(request, [result], "/schedules")
        if job_id is not None:
            return JSONResponse({"job_id": job_id, "message": result.message})
        return response
    return answer(request, [result], "/schedules")


async def job_action(request: Request) -> Response:
    """``/actions/jobs/{action}``: retry now, cancel or delete the job the form names."""
    form, refusal = await allowed(request)
    if form is None:
        return refusal or refuse(request, 400, "no form")
    action = request.path_params["action"]
    job_id = first(form, "job_id")
    admin = JobAdmin(state(request).queue, context(request).layout)
    do = {"retry": admin.retry_now, "cancel": admin.cancel, "delete": admin.delete}.get(action)
    if do is None:
        return refuse(request, 404, f"no action {action[:40]!r}")
    try:
        result = await do(job_id)
    except InvalidKeyError as exc:
        return refuse(request, 400, str(exc))
    except CacheError as exc:
        return store_failure(request, exc)
    back = "/jobs" if action == "delete" and result.ok else f"/jobs/{job_id}"
    return answer(request, [result], back)


async def queue_action(request: Request) -> Response:
    """``/actions/queue/pause`` (with a ``reason``) and ``/actions/queue/resume``."""
    form, refusal = await allowed(request)
    if form is None:
        return refusal or refuse(request, 400, "no form")
    ctx, s = context(request), state(request)
    action = request.path_params["action"]
    try:
        if action == "pause":
            reason = first(form, "reason")[:200]
            now = await pause(s.queue, ctx.layout, by=f"dashboard {who(request)}", reason=reason)
            result = ActionResult("pause", ctx.layout.name, Verdict.DONE, now.describe())
        elif action == "resume":
            was = await resume(s.queue, ctx.layout)
            verdict = Verdict.DONE if was else Verdict.UNCHANGED
            said = "resumed: workers claim again" if was else "was not paused"
            result = ActionResult("resume", ctx.layout.name, verdict, said)
        else:
            return refuse(request, 404, f"no action {action[:40]!r}")
    except CacheError as exc:
        return store_failure(request, exc)
    return answer(request, [result], "/")
