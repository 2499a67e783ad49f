#!/usr/bin/env bash
# Tests of the Airflow example (examples/airflow): the operators, the trigger
# and the example DAG (run with dag.test()) against real API servers.
#   scripts/test-airflow.sh [pytest arguments]
exec bash "$(dirname "$0")/test-example.sh" airflow "$@"
