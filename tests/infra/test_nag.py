"""cdk-nag's AwsSolutions checks: zero unacknowledged findings, and every acknowledgement has a reason."""

from __future__ import annotations

import json


def test_awssolutions_finds_nothing_unacknowledged(synthesized):
    _, _, outdir = synthesized
    report = json.loads((outdir / "validation-report.json").read_text())
    nag = [plugin for plugin in report["pluginReports"] if plugin["pluginName"] == "AwsSolutions"]
    assert len(nag) == 1 and nag[0]["conclusion"] == "success"
    assert nag[0]["violations"] == []


def test_each_acknowledgement_is_specific_and_explained(synthesized):
    _, _, outdir = synthesized
    report = json.loads((outdir / "validation-report.json").read_text())
    suppressed = [entry for plugin in report["pluginReports"] if plugin["pluginName"] == "AwsSolutions"
                  for entry in plugin["suppressedViolations"]]
    # the lost-events queue is itself where failed events are kept: it needs no dead-letter queue of its own
    (queue,) = [entry for entry in suppressed if entry["acknowledgedId"] == "AwsSolutions::AwsSolutions-SQS3"]
    assert "on-failure destination" in queue["reason"]
    suppressed.remove(queue)
    # the six key patterns of issue 4, the cancel marker for worker and orchestrator, and the worker's full logs;
    # the job's source media, which the worker presigns (issue 16); the chunks' media records, which the worker
    # writes (issue 17); and the webhook secret's rotation, which is by hand (every receiver holds it)
    rotation = [entry for entry in suppressed if entry["acknowledgedId"] == "AwsSolutions::AwsSolutions-SMG4"]
    assert len(rotation) == 1 and "rotated by hand" in rotation[0]["reason"]
    suppressed = [entry for entry in suppressed if entry not in rotation]
    assert len(suppressed) == 12
    for entry in suppressed:
        # one object-key pattern per acknowledgement, never a blanket rule id
        assert "[Resource::" in entry["acknowledgedId"] and "/jobs/*/" in entry["acknowledgedId"]
        assert "job ids are made at submit time" in entry["reason"]
