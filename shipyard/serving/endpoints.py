"""The gateway's HTTP endpoints, one small method each, around a ``Gateway``.

Prediction endpoints share one path (``Endpoints.predict``): read and parse the body while the
``parsing`` counter tells the micro-batcher more requests are on their way, find the model (and the
pinned version of OIP's versioned routes), route and predict, record. A ``RequestError`` is the
client's mistake (4xx naming the field); any other exception while predicting is the model's
(500 naming the model). The endpoints only translate HTTP: no routing or model logic lives here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard import __version__
from shipyard.errors import InputError
from shipyard.serving import codec, oip, scoring
from shipyard.serving.answers import GATEWAY_VERSION, MAX_REQUEST_ID, NotLoaded, request_id
from shipyard.serving.codec import Inputs, RequestError
from shipyard.serving.follower import ModelRoute, Served
from shipyard.serving.requestlog import FeedbackEntry

if TYPE_CHECKING:
    from shipyard.serving.app import Gateway

OIP_TYPES = {"double": "FP64", "long": "INT64", "boolean": "BOOL", "string": "BYTES"}


@dataclass
class Parsed:
    """A prediction request as its protocol gave it."""

    inputs: Inputs
    field: str
    parameters: dict[str, Any] | None = None
    oip: oip.InferRequest | None = None


@dataclass
class Answer:
    """A prediction made: who answered, on which route, with what."""

    served: Served
    route_name: str
    preds: Any
    scores: Any


Parser = Callable[[bytes, Request], Parsed]


def sticky_key(route: ModelRoute, request: Request, inputs: Inputs, parameters: dict[str, Any] | None) -> str | None:
    """The request's sticky key: the route's header, else the named body key's first value."""
    header = route.sticky_header
    if header:
        value = request.headers.get(header)
        if value:
            return value
    key = route.sticky_key
    if key:
        for source in (parameters, inputs.params):
            if source and key in source:
                return str(source[key])
        if inputs.values is not None and key in inputs.values and inputs.values[key]:
            return str(inputs.values[key][0])
        if inputs.columns is not None and inputs.rows and key in inputs.columns:
            return str(inputs.rows[0][inputs.columns.index(key)])
    return None


def parse_oip(body: bytes, request: Request) -> Parsed:
    parsed = oip.parse_request(body, request.headers.get(oip.HEADER_LENGTH))
    return Parsed(parsed.inputs, "inputs", parsed.parameters, parsed)


def parse_mlflow_json(body: bytes, request: Request) -> Parsed:
    return Parsed(*scoring.parse_json(body))


def parse_scoring(body: bytes, request: Request) -> Parsed:
    inputs, field = scoring.parse_invocation(body, request.headers.get("content-type"))
    return Parsed(inputs, field)


def read_request(parse: Parser, body: bytes, request: Request) -> Parsed:
    """Parse a body; the parsers raise RequestError for what they check, and anything else they
    trip over is still the body's fault (no model has run yet), so a 4xx rather than a 500."""
    try:
        return parse(body, request)
    except RequestError:
        raise
    except Exception as exc:
        raise RequestError("body", f"the body cannot be read ({type(exc).__name__}: {exc})"[:500]) from None


class Endpoints:
    """The HTTP face of one Gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    # -- shared -------------------------------------------------------------------------------
    def find_version(self, route: ModelRoute, version: str | None, rid: str) -> int | Response | None:
        """The pinned version of a versioned route (None: route by strategy), or a 404."""
        if version is None:
            return None
        number = int(version) if version.isdigit() and len(version) < 19 else None
        if number is None or number not in route.versions:
            served = ", ".join(str(v) for v in sorted(route.versions))
            return self.gw.error(404, f"model {route.name!r} has no served version {version!r}", rid,
                                 field="version", hint=f"served versions: {served}", reason="unknown_model")
        return number

    async def predict(self, request: Request, name: str, parse: Parser,
                      version: str | None = None) -> tuple[Answer, Parsed, str] | Response:
        """Parse, route and predict one request; a Response when it ends in an error."""
        gw = self.gw
        rid = request_id(request)
        gw.parsing += 1
        parsing = True
        try:
            route = gw.find_model(name, rid)
            if isinstance(route, Response):
                return route
            pinned = self.find_version(route, version, rid)
            if isinstance(pinned, Response):
                return pinned
            try:
                parsed = read_request(parse, await gw.read_body(request), request)
                key = sticky_key(route, request, parsed.inputs, parsed.parameters)
                gw.parsing -= 1
                parsing = False
                served, route_name, rows, preds, scores, elapsed = await gw.serve(
                    route, parsed.inputs, rid, key, parsed.field, pinned)
            except RequestError as exc:
                reason = "too_large" if exc.status == 413 else "bad_request"
                return gw.error(client_status(exc.status, parse), exc.message, rid, field=exc.field, reason=reason)
            except NotLoaded as exc:
                gw.metrics.request(name, route.table["champion"], "primary", "error").inc()
                return gw.error(503, str(exc), rid, reason="not_loaded")
            except InputError as exc:  # the model's signature refused a value (a double in a long column)
                return gw.error(client_status(422, parse), exc.message, rid, hint=exc.hint, reason="bad_request")
            except Exception as exc:
                gw.metrics.request(name, route.table["champion"], "primary", "error").inc()
                return gw.error(500, f"model {name!r} failed: {type(exc).__name__}: {exc}"[:1000], rid,
                                reason="model_error")
            gw.record(served, route_name, rows, preds, scores, elapsed, rid)
            return Answer(served, route_name, preds, scores), parsed, rid
        finally:
            if parsing:
                gw.parsing -= 1

    def answer(self, body: Any, answer: Answer, rid: str, extra: dict[str, str] | None = None,
               media: str = "application/json") -> Response:
        headers = {"x-shipyard-route": answer.route_name, **(extra or {})}
        return self.gw.respond(body, 200, answer.served.version, rid, headers, media)

    # -- Open Inference Protocol v2 -----------------------------------------------------------
    async def infer(self, request: Request) -> Response:
        """``POST /v2/models/{name}[/versions/{version}]/infer``, JSON or binary tensor data."""
        params = request.path_params
        done = await self.predict(request, params["name"], parse_oip, params.get("version"))
        if isinstance(done, Response):
            return done
        answer, parsed, rid = done
        assert parsed.oip is not None
        results = {"predict": np.asarray(answer.preds)}
        if answer.scores is not None:
            results["score"] = np.asarray(answer.scores, dtype=np.float64)
        wanted = parsed.oip.outputs
        missing = [n for n in wanted.names or () if n not in results]
        if missing:
            return self.gw.error(400, f"model {answer.served.name!r} version {answer.served.version} has no "
                                 f"output {missing[0]!r} (it gives: {', '.join(results)})", rid, field="outputs")
        head = {"model_name": answer.served.name, "model_version": str(answer.served.version),
                "id": parsed.oip.client_id or rid}
        body, extra, media = oip.encode_response(head, results, wanted, codec.jsonable)
        return self.answer(body, answer, rid, extra, media)

    def version_of(self, request: Request, rid: str) -> tuple[ModelRoute, Served | None, int | None] | Response:
        """The model of the path, the version it names (the champion when none) and that number."""
        found = self.gw.find_model(request.path_params["name"], rid)
        if isinstance(found, Response):
            return found
        pinned = self.find_version(found, request.path_params.get("version"), rid)
        if isinstance(pinned, Response):
            return pinned
        return found, found.champion if pinned is None else found.versions[pinned], pinned

    async def model_ready(self, request: Request) -> Response:
        """``GET /v2/models/{name}[/versions/{version}]/ready``: 200 when it can answer, else 503."""
        rid = request_id(request)
        found = self.version_of(request, rid)
        if isinstance(found, Response):
            return found
        route, served, _ = found
        ready = served is not None and served.ok
        return self.gw.respond({"name": route.name, "ready": ready}, 200 if ready else 503,
                               served.version if served else GATEWAY_VERSION, rid)

    async def model_metadata(self, request: Request) -> Response:
        """``GET /v2/models/{name}[/versions/{version}]``: inputs and outputs of the version."""
        rid = request_id(request)
        lookup = self.version_of(request, rid)
        if isinstance(lookup, Response):
            return lookup
        found, served, pinned = lookup
        features = (served.features if served else None) or ()
        outputs = [{"name": "predict", "datatype": "BYTES" if served and served.labels else "FP64", "shape": [-1]}]
        if served and served.labels and self.gw.settings.scores:
            outputs.append({"name": "score", "datatype": "FP64", "shape": [-1]})
        body = {
            "name": found.name,
            "versions": [str(v) for v in sorted(found.versions)] if pinned is None else [str(pinned)],
            "platform": "shipyard",
            "inputs": [{"name": f.name, "datatype": OIP_TYPES.get(f.type, "BYTES"), "shape": [-1]} for f in features],
            "outputs": outputs,
            "routing": {k: found.table.get(k) for k in ("strategy", "champion", "candidate", "weight",
                                                        "shadow_percent", "deployment")},
        }
        return self.gw.respond(body, 200, served.version if served else GATEWAY_VERSION, rid)

    async def server_metadata(self, request: Request) -> Response:
        """``GET /v2``: the server's name, version and protocol extensions."""
        body = {"name": "shipyard", "version": __version__, "extensions": ["binary_tensor_data"]}
        return self.gw.respond(body, rid=request_id(request))

    async def live(self, request: Request) -> Response:
        return self.gw.respond({"live": True}, rid=request_id(request))

    async def v2_ready(self, request: Request) -> Response:
        ready = self.gw.all_ready()
        return self.gw.respond({"ready": ready}, 200 if ready else 503, rid=request_id(request))

    # -- MLflow scoring server and KServe v1 --------------------------------------------------
    async def invocations(self, request: Request) -> Response:
        """``POST /invocations`` as MLflow's scoring server: JSON (four shapes) or CSV."""
        name = request.query_params.get("model") or request.headers.get("x-shipyard-model")
        if not name:
            snapshot = self.gw.follower.snapshot
            models = list(snapshot.models) if snapshot else []
            if len(models) != 1:
                return self.gw.error(404 if not models else 400, "no model is served" if not models else
                                     f"{len(models)} models are served; name one with ?model=NAME",
                                     request_id(request), field="model", reason="unknown_model")
            name = models[0]
        return await self._predictions(request, name, parse_scoring)

    async def v1_predict(self, request: Request) -> Response:
        """``POST /v1/models/{name}:predict`` (JSON bodies as /invocations takes them)."""
        return await self._predictions(request, request.path_params["name"], parse_mlflow_json)

    async def _predictions(self, request: Request, name: str, parse: Parser) -> Response:
        done = await self.predict(request, name, parse)
        if isinstance(done, Response):
            return done
        answer, _, rid = done
        return self.answer({"predictions": codec.jsonable(np.asarray(answer.preds))}, answer, rid)

    async def ping(self, request: Request) -> Response:
        """``GET /ping`` as MLflow's: 200 once every routed champion is loaded."""
        ready = self.gw.all_ready()
        return self.gw.respond(b"\n", 200 if ready else 503, rid=request_id(request))

    async def version(self, request: Request) -> Response:
        return self.gw.respond(__version__.encode(), rid=request_id(request), media="text/plain")

    # -- operations ---------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return self.gw.respond({"status": "ok"}, rid=request_id(request))

    async def ready(self, request: Request) -> Response:
        """``GET /ready``: routing freshness, every version's load state, the request log's counters."""
        body, stale = self.gw.readiness()
        headers = {"x-shipyard-routing": "stale" if stale else "fresh"}
        return self.gw.respond(body, 200 if body["ready"] else 503, rid=request_id(request), extra=headers)

    async def metrics(self, request: Request) -> Response:
        self.gw.refresh_routing_gauges()
        return self.gw.respond(self.gw.metrics.render(), rid=request_id(request),
                               media="text/plain; version=0.0.4; charset=utf-8")

    async def feedback(self, request: Request) -> Response:
        """``POST /v1/feedback``: true labels for earlier predictions, by their request id."""
        rid = request_id(request)
        try:
            entries = feedback_entries(codec.loads(await self.gw.read_body(request)))
        except RequestError as exc:
            return self.gw.error(exc.status, exc.message, rid, field=exc.field)
        if self.gw.log is None:
            return self.gw.error(503, "this gateway has no request log, so feedback cannot be stored", rid)
        self.gw.log.append_feedback(entries)
        return self.gw.respond({"accepted": len(entries)}, 202, rid=rid)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return self.gw.error(404, f"no route {request.method} {request.url.path}", request_id(request),
                             hint="see /v2/models/NAME/infer, /invocations, /v1/models/NAME:predict, /health, /ready",
                             reason="no_route")

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return self.gw.error(405, f"method {request.method} is not allowed on {request.url.path}",
                             request_id(request), reason="method")

    def routes(self) -> list[Route]:
        get: Callable[[str, Callable[[Request], Awaitable[Response]]], Route] = \
            lambda path, fn: Route(path, fn, methods=["GET"])  # noqa: E731
        post: Callable[[str, Callable[[Request], Awaitable[Response]]], Route] = \
            lambda path, fn: Route(path, fn, methods=["POST"])  # noqa: E731
        return [
            get("/v2", self.server_metadata),
            get("/v2/health/live", self.live),
            get("/v2/health/ready", self.v2_ready),
            post("/v2/models/{name}/infer", self.infer),
            post("/v2/models/{name}/versions/{version}/infer", self.infer),
            get("/v2/models/{name}/ready", self.model_ready),
            get("/v2/models/{name}/versions/{version}/ready", self.model_ready),
            get("/v2/models/{name}", self.model_metadata),
            get("/v2/models/{name}/versions/{version}", self.model_metadata),
            post("/invocations", self.invocations),
            get("/ping", self.ping),
            get("/version", self.version),
            post("/v1/models/{name}:predict", self.v1_predict),
            post("/v1/feedback", self.feedback),
            get("/health", self.health),
            get("/ready", self.ready),
            get("/metrics", self.metrics),
        ]


def client_status(status: int, parse: Parser) -> int:
    """The status of a client's mistake in the request's protocol: OIP (Triton, KServe) answers 400
    for any bad request, where MLflow's shapes get 422."""
    return oip.BAD if status == 422 and parse is parse_oip else status


def feedback_entries(doc: Any) -> list[FeedbackEntry]:
    """The feedback items of one body: ``{"feedback": [...]}`` or a single ``{request_id, label}``."""
    listed = isinstance(doc, dict) and "feedback" in doc
    items = doc.get("feedback") if listed else [doc]
    if not isinstance(items, list) or not items:
        raise RequestError("feedback", "expected a non-empty list of {request_id, label}")
    entries = []
    now = time.time()
    for i, item in enumerate(items):
        where = f"feedback[{i}]" if listed else "body"
        if not isinstance(item, dict):
            raise RequestError(where, "expected an object with request_id and label")
        req = item.get("request_id")
        if not isinstance(req, str) or not req or len(req) > 2 * MAX_REQUEST_ID:
            raise RequestError(f"{where}.request_id", "required: the x-request-id of the prediction")
        label = item.get("label")
        if "label" not in item or not isinstance(label, str | int | float | bool) or label != label:
            raise RequestError(f"{where}.label", "required: the true label (a string or a number)")
        entries.append(FeedbackEntry(req, now, label))
    return entries
