"""An admin action that makes real Nova log an ERROR traceback on nova-compute: the fake virt
driver cannot tell a hypervisor's uptime, and the compute service logs the NotImplementedError
under the request's global id before the API answers 501."""
from novastress_locust.user import NovaUser, action


@action
def hypervisor_uptime(user: NovaUser) -> None:
    hypervisors = user.compute.get("/os-hypervisors").json()["hypervisors"]
    user.compute.get(f"/os-hypervisors/{hypervisors[0]['id']}/uptime", expect=(501,),
                     name="/os-hypervisors/{id}/uptime")


class HypervisorUptime(NovaUser):
    threads = 1
    tasks = [hypervisor_uptime]
