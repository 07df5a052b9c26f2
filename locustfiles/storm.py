"""Contention storm: users share a pool of servers and race lifecycle actions and deletes on it.

    locust -f locustfiles/storm.py --headless -u 8 -t 60s --storm-pool-size 6

Invariant checks run during and after the load (INVARIANT rows); 409s land on CONFLICT rows.
"""
from novastress_locust.actions.storm import storm
from novastress_locust.storm import StormUser


class Storm(StormUser):
    threads = 6
    tasks = [storm]
