"""Django: a single-file project whose app starts the Experiment client in ``AppConfig.ready()``.

Demo (offline, against a local stand-in for Amplitude)::

    pip install -e . -r requirements-examples.txt
    python examples/django_app.py runserver
    curl 'http://127.0.0.1:8000/checkout?user_id=user-1'

In production serve ``django_app:application`` with any WSGI server (``gunicorn django_app``) with
``AMPLITUDE_DEPLOYMENT_KEY``, ``AMPLITUDE_API_KEY`` and ``DJANGO_SECRET_KEY`` set. Leave
``AMPLITUDE_SERVER_URL`` and ``AMPLITUDE_EVENTS_URL`` unset: they default to Amplitude's servers and
exist so that tests can point the app at a stand-in. In a regular project the ``AppConfig`` goes in
your app's ``apps.py`` and the view in ``views.py``.
"""

from __future__ import annotations

import logging
import os
import sys

from django.apps import AppConfig, apps
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

from amplitude_experiment import AssignmentConfig, FetchError, LocalEvaluationClient, LocalEvaluationConfig, User

FLAG_KEY = "checkout-redesign"

logger = logging.getLogger(__name__)

settings.configure(
    DEBUG=os.environ.get("DJANGO_DEBUG") == "1",
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "insecure-example-only"),
    ALLOWED_HOSTS=os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(","),
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[f"{__name__}.ExperimentsConfig"],
    USE_TZ=True,
)


class ExperimentsConfig(AppConfig):
    name = __name__
    label = "experiments"
    experiment: LocalEvaluationClient

    def ready(self) -> None:
        if hasattr(self, "experiment"):  # ready() may run more than once
            return
        config = LocalEvaluationConfig(
            server_url=os.environ.get("AMPLITUDE_SERVER_URL", "https://api.lab.amplitude.com"),
            assignment_config=AssignmentConfig(
                api_key=os.environ["AMPLITUDE_API_KEY"],
                server_url=os.environ.get("AMPLITUDE_EVENTS_URL", "https://api2.amplitude.com/2/httpapi"),
            ),
        )
        # One client for the whole process. It stops itself at interpreter exit, which sends the
        # queued assignment events (bounded wait); call self.experiment.stop() to do it earlier.
        self.experiment = LocalEvaluationClient(os.environ["AMPLITUDE_DEPLOYMENT_KEY"], config)
        try:
            self.experiment.start()  # blocks for the first flag download only
        except FetchError:
            # Amplitude unreachable: serve the fallback for now; the client keeps retrying in the background.
            logger.warning("Experiment flags unavailable at start-up; serving fallbacks until they arrive")


def checkout(request: HttpRequest) -> JsonResponse:
    user_id = request.GET.get("user_id")
    if not user_id:
        return JsonResponse({"error": "user_id is required"}, status=400)
    experiment = apps.get_app_config("experiments").experiment
    user = User(user_id=user_id, device_id=request.GET.get("device_id"))
    # Local evaluation: microseconds, no network. Tracks an assignment event for the user.
    variant = experiment.evaluate_v2(user, [FLAG_KEY]).get(FLAG_KEY)
    return JsonResponse({"user_id": user_id, "flag": FLAG_KEY, "variant": variant.key if variant else "control"})


urlpatterns = [path("checkout", checkout)]


# -- demo mode: `python examples/django_app.py runserver` serves against a local stand-in ---------------

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    from amplitude_experiment.testing import AmplitudeStandIn, experiment

    DEMO_FLAGS = [experiment(FLAG_KEY, bucket_by="user_id", experiment_key="exp-checkout")]  # 50/50 control/treatment

    if "AMPLITUDE_SERVER_URL" in os.environ:  # e.g. runserver's auto-reloaded child: the stand-in runs already
        execute_from_command_line(sys.argv)
    else:
        with AmplitudeStandIn(flags=DEMO_FLAGS) as amplitude:
            os.environ.update(AMPLITUDE_SERVER_URL=amplitude.url, AMPLITUDE_EVENTS_URL=amplitude.url + "/2/httpapi",
                              AMPLITUDE_DEPLOYMENT_KEY="server-demo", AMPLITUDE_API_KEY="demo-analytics-key")
            try:
                execute_from_command_line(sys.argv)
            finally:
                if apps.ready:  # send the queued events while the stand-in still runs
                    apps.get_app_config("experiments").experiment.stop()
else:
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()  # loads the app: ExperimentsConfig.ready() starts the client
