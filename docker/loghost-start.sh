#!/bin/sh
# Start the log host: one key pair shared with the master through /keys, then sshd in the foreground.
set -eu
if [ ! -f /keys/id_ed25519 ]; then
    ssh-keygen -q -t ed25519 -N '' -C novastress-logwatch -f /keys/id_ed25519
fi
# the master runs as uid 1000 (user novastress in docker/Dockerfile): let it read the key
chown 1000 /keys/id_ed25519 && chmod 600 /keys/id_ed25519
install -m 600 -o logs -g logs /keys/id_ed25519.pub /home/logs/.ssh/authorized_keys
ssh-keygen -A
exec /usr/sbin/sshd -D -e -o PasswordAuthentication=no
