"""Boot a server, give the project a floating IP, release both: two kinds of resource per action."""
from novastress_locust.user import NovaUser, action


@action
def server_and_floating_ip(user: NovaUser) -> None:
    server = user.boot_server()
    networks = user.client.network.get("/v2.0/networks").json()["networks"]
    public = next(network for network in networks if network.get("router:external"))
    floating_ip = user.create_floating_ip(public["id"])
    user.delete_floating_ip(floating_ip)
    user.delete_server(server)


class ServerAndFloatingIp(NovaUser):
    threads = 4
    tasks = [server_and_floating_ip]
