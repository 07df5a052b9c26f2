"""Nova's fake virt driver with a compute node identity that survives a restart.

Copied into the stack's `nova/virt/` as `novastress_fake.py` (nova loads drivers only from
the `nova.virt` namespace) and named in nova.conf as
`compute_driver = novastress_fake.StableFakeDriver`. The stock FakeDriver draws a new node
uuid in every process, so a restarted nova-compute stops with "No local node identity
found" or "Duplicate compute node record". This one keeps the uuid in Nova's own identity
file (`<state_path>/compute_id`), as the libvirt driver does.
"""
import uuid

from nova.virt import fake, node


class StableFakeDriver(fake.FakeDriver):
    """FakeDriver whose node uuid is read from, or written to, `<state_path>/compute_id`."""

    def _stable_uuid(self, nodename):
        known = node.read_local_node_uuid()
        if known:
            return known
        # new for each new host: a host that is retired and added again is a new compute node
        # (Nova keeps the deleted node's row, and its uuid stays taken)
        made = str(uuid.uuid4())
        node.write_local_node_uuid(made)
        return made

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        if resources:
            resources["uuid"] = self._stable_uuid(nodename)
        return resources

    def get_nodenames_by_uuid(self, refresh=False):
        return {self._stable_uuid(name): name for name in self._nodes}
