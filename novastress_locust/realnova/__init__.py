"""A real Nova 34 on this machine, for trying the tool against real OpenStack code.

    novastress-realnova up --flavors 2 --compute-hosts 2   # install (first time), start, shape
    locust -f locustfiles/create_destroy.py --os-cloud realnova --headless -t 30s
    novastress-realnova down

See `stack.Stack` for what runs and where its files live.
"""
from .configs import Ports
from .stack import Shape, Stack, StackError

__all__ = ["Ports", "Shape", "Stack", "StackError"]
