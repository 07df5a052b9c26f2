"""Tempest's `run_stress.py -t FILE`: run a scenario file (Tempest's JSON unchanged, or YAML).

    locust -f locustfiles/scenario.py --headless -t 60s --scenario locustfiles/etc/server-create-destroy-test.json
    locust -f locustfiles/scenario.py --headless -t 5m --scenario locustfiles/etc/gate-mix.yaml --serial

Each entry is one User class with its `threads` as a fixed user count; with no -u the run
spawns exactly those, all at once.
"""
from novastress_locust.scenario import classes_from_command_line

globals().update({user_class.__name__: user_class for user_class in classes_from_command_line(__name__)})
