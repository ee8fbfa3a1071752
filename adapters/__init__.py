"""Adapters: separate processes that connect outside systems to the hub through its public HTTP API.

``common`` holds what every adapter shares (an authenticated hub client, safe XML parsing, a
mapping-test harness); each other subpackage is one outside system (``gemeente``: iWmo 3.2).
Nothing here imports ``hub``: an adapter knows the hub only as a FHIR server over HTTP.
"""
