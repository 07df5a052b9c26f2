"""An action the cloud refuses the same way every time: it asks for a server that does not exist."""
from novastress_locust.user import NovaUser, action


@action
def show_missing_server(user: NovaUser) -> None:
    user.compute.get("/servers/00000000-0000-0000-0000-000000000000")


class SameFailure(NovaUser):
    threads = 2
    tasks = [show_missing_server]
