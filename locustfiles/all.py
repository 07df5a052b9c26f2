"""Tempest's `run_stress.py -a [-T TYPE] [-i]`: every @stresstest action and test, one User class each.

    locust -f locustfiles/all.py --headless -t 60s                          # every marked action
    locust -f locustfiles/all.py --headless -t 60s --stress-type volume     # Tempest's -T volume
    locust -f locustfiles/all.py --headless -t 60s --stress-module tests/stress/test_mine.py --call-inherited

Locust's --tags / --exclude-tags filter the same marks. Each gets
--default-thread-number-per-action users (4 when not set).
"""
from novastress_locust.scenario import classes_from_discovery

globals().update({user_class.__name__: user_class for user_class in classes_from_discovery(__name__)})
