"""Watch OpenStack service logs on every node while a load runs; report each new error once.

    from logwatch import LogWatcher, WatchConfig, SSHSettings, parse_hosts

    watcher = LogWatcher.build(WatchConfig(logfiles="/opt/stack/logs/*.log", interval=5),
                               parse_hosts("controller,compute-1:2222"), ssh=SSHSettings(user="stack"))
    watcher.start(on_finding=lambda f: print(f.name, f.record.summary()))

No Locust import here: `novastress_locust.watch` drives this from the master.
"""
from .matching import DEFAULT_PATTERN, Matcher, PatternError
from .records import LogRecord, RecordGrouper, parse_records
from .targets import (Target, TargetError, discover_os_services, parse_address, parse_host_map,
                      parse_hosts, parse_service_list, resolve)
from .transports import FileState, LocalTransport, SSHSettings, SSHTransport, Transport, TransportError
from .watcher import Finding, HostCoverage, HostStatus, HostWatcher, LogWatcher, WatchConfig

__all__ = [
    "DEFAULT_PATTERN", "Matcher", "PatternError", "LogRecord", "RecordGrouper", "parse_records",
    "Target", "TargetError", "discover_os_services", "parse_address", "parse_host_map", "parse_hosts",
    "parse_service_list", "resolve", "FileState", "LocalTransport", "SSHSettings", "SSHTransport",
    "Transport", "TransportError", "Finding", "HostCoverage", "HostStatus", "HostWatcher", "LogWatcher", "WatchConfig",
]
