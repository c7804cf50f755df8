"""Incidents to the operator's pager: Prometheus Alertmanager (API v2) or a JSON webhook.

``alerts`` turns an incident record into an alert (one rule, both targets), ``silences`` holds
operators' maintenance windows, ``targets`` posts a batch, and ``forwarder`` consumes the
incidents topic at least once, committing only what the target accepted.
"""
