"""The stackhook app plus one empty HTTP function, so a benchmark can compare both in one host."""

import azure.functions as func

from function_app import app

baseline = func.Blueprint()


@baseline.route(route="benchmark/empty", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def benchmark_empty(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=202)


app.register_functions(baseline)
