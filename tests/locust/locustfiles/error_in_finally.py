"""An action whose finally block blocks and then raises: the error replaces the GreenletExit that
stops the user, the way a failed cleanup step in a real action would."""
import gevent

from novastress_locust.user import NovaUser, action


@action
def hold_then_fail_to_clean(user: NovaUser) -> None:
    server = user.boot_server()
    try:
        gevent.sleep(30)   # the run's -t ends while every user is here
    finally:
        user.delete_server(server)
        raise RuntimeError("the action's own cleanup step failed")


class ErrorInFinally(NovaUser):
    tasks = [hold_then_fail_to_clean]
