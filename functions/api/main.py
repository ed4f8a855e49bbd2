"""Cloud Run function `api`: the web app's HTTP entry; the work lives in handler.py."""

from __future__ import annotations

import flask
import functions_framework

from functions.api.handler import HttpApi

# Built at import, so a warm instance reuses its clients and its token verifier.
service = HttpApi.create()


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    return service.respond(request)
