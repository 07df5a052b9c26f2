"""A Cinder volume driver that stores nothing: volumes exist only in Cinder's database.

Copied into the stack's `cinder/volume/drivers/` as `novastress_noop.py` and named in
cinder.conf as `volume_driver = cinder.volume.drivers.novastress_noop.NoopVolumeDriver`.
Create, delete, extend, snapshot, attach and detach all succeed without a disk, LVM or an
iSCSI target, which is what Nova's fake virt driver needs of a volume: a connection_info to
record. (Cinder's own test FakeLoggingVolumeDriver is an LVM driver underneath and runs
`vgs` when it starts.) This file imports nothing of novastress_locust: it runs inside the
stack's virtualenv.
"""
from cinder.volume import driver


class NoopVolumeDriver(driver.VolumeDriver):
    """Every volume call succeeds at once; the backend reports unlimited thin capacity."""

    VERSION = "1.0.0"

    def check_for_setup_error(self):
        pass

    def create_volume(self, volume):
        return None

    def create_volume_from_snapshot(self, volume, snapshot):
        return None

    def create_cloned_volume(self, volume, src_vref):
        return None

    def delete_volume(self, volume):
        pass

    def extend_volume(self, volume, new_size):
        pass

    def create_snapshot(self, snapshot):
        return None

    def delete_snapshot(self, snapshot):
        pass

    def ensure_export(self, context, volume):
        pass

    def create_export(self, context, volume, connector):
        return None

    def remove_export(self, context, volume):
        pass

    def initialize_connection(self, volume, connector, **kwargs):
        # what Nova's fake virt driver records for the attachment; nothing connects to it
        return {"driver_volume_type": "iscsi", "data": {"access_mode": "rw", "volume_id": volume.id}}

    def terminate_connection(self, volume, connector, **kwargs):
        pass

    def copy_image_to_volume(self, context, volume, image_service, image_id, disable_sparse=False):
        pass

    def _update_volume_stats(self):
        name = self.configuration.safe_get("volume_backend_name") or "noop"
        self._stats = {
            "volume_backend_name": name, "vendor_name": "novastress", "driver_version": self.VERSION,
            "storage_protocol": "iSCSI", "pools": [{
                "pool_name": name, "total_capacity_gb": "infinite", "free_capacity_gb": "infinite",
                "reserved_percentage": 0, "thin_provisioning_support": True, "QoS_support": False,
                "multiattach": True}]}
