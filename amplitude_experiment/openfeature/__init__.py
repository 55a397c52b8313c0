"""OpenFeature provider for Amplitude Experiment local evaluation.

Install the extra (``pip install 'amplitude-local-evaluation[openfeature]'``), then::

    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from amplitude_experiment.openfeature import AmplitudeProvider

    api.set_provider(AmplitudeProvider.from_key("server-..."))
    client = api.get_client()
    client.get_boolean_value("new-checkout", False, EvaluationContext("user-1", {"plan": "pro"}))

Lifecycle: ``initialize()`` starts the client (``start_on_initialize``) and fails with
``PROVIDER_NOT_READY`` when no flags could be loaded; the client keeps retrying and the provider
emits ``PROVIDER_READY`` once flags arrive. Bootstrap-flag or stopped-client problems are
``PROVIDER_FATAL``. ``shutdown()`` stops the client (``stop_on_shutdown``). Every later config
change emits ``PROVIDER_CONFIGURATION_CHANGED`` with the changed flag keys.

Evaluation context → ``User``:

* targeting key → ``user_id`` (a ``user_id`` attribute is used only when there is no targeting key);
* ``device_id`` and the other ``User`` string fields by name (``country``, ``city``, ``region``,
  ``dma``, ``language``, ``platform``, ``version``, ``os``, ``device_manufacturer``,
  ``device_brand``, ``device_model``, ``carrier``, ``library``, ``ip_address``); numbers and
  booleans become text (``true``/``false``), datetimes ISO 8601;
* ``groups`` → ``groups`` (``{type: name}`` or ``{type: [names]}``), ``group_properties`` →
  ``group_properties`` (``{type: {name: {property: value}}}``), ``cohort_ids`` and
  ``group_cohort_ids`` by name;
* every other attribute → ``user_properties``; a ``user_properties`` mapping attribute is merged
  on top of them. ``None`` values are left out.

A context with neither a targeting key (or ``user_id``) nor a ``device_id`` is
``TARGETING_KEY_MISSING``; a mapped attribute of the wrong shape is ``INVALID_CONTEXT``.

Values: boolean takes the variant ``value`` ``true``/``on`` or ``false``/``off`` (any case);
string the ``value``; integer and float parse the ``value`` strictly (plain decimal, finite);
a variant without a ``value`` stands for its key. Object takes the ``payload`` when it is a JSON
object or array. Anything else is ``TYPE_MISMATCH``.

Reasons: TARGETING_MATCH → ``TARGETING_MATCH``; SPLIT (bucketed) → ``SPLIT``; ALL_USERS →
``STATIC`` when the flag's first segment serves everyone without a bucket, otherwise
``DEFAULT`` (the fall-through segment). The flag's default ("off") variant resolves to the
caller's default value with reason ``DEFAULT`` and variant ``off``: it means "not in the flag"
(``evaluate()`` leaves it out of its results the same way). Errors return the default value with reason ``ERROR`` and
``FLAG_NOT_FOUND`` (unknown flag, or no variant for this context), ``PARSE_ERROR`` (malformed
flag), ``PROVIDER_NOT_READY`` (no flags yet) or ``GENERAL`` (unexpected).

Flag metadata: ``flagType``, ``flagVersion``, ``segmentName`` and ``experimentKey`` where
present, plus ``version`` (``flagVersion`` as text, OpenFeature's well-known key).

Assignment events: when the client has an ``assignment_config``, each resolution tracks the
same assignment ``evaluate_v2(user, {flag_key})`` would (the flag and its dependencies,
deduplicated per user and day), from the one evaluation the resolution makes. Exposures are
not tracked: call ``client.track_exposure`` where the user actually sees the variant.
"""

try:
    from .provider import METADATA_KEYS, PROVIDER_NAME, AmplitudeProvider
except ImportError as exc:  # pragma: no cover - depends on the environment
    if exc.name is not None and exc.name.split(".")[0] == "openfeature":
        raise ImportError(
            "amplitude_experiment.openfeature needs openfeature-sdk>=0.7: "
            "pip install 'amplitude-local-evaluation[openfeature]'"
        ) from exc
    raise

__all__ = ["AmplitudeProvider", "METADATA_KEYS", "PROVIDER_NAME"]
