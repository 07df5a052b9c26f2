#!/usr/bin/env bash
# Set up everything the test suite needs and run it: a virtualenv with the package and
# its test extras, and (as root, through apt) the OpenSSH server the log-watching tests
# start on loopback, and Chromium for the web UI tests. Then the real-cloud tier: a real
# Nova 34 on loopback (`novastress-realnova up`, which installs what it needs the first time)
# and tests/realcloud against it. Extra arguments go to pytest and run just those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the web UI tests drive Debian's browser through playwright (no browser download)
debian_packages=(openssh-server openssh-client chromium)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing Debian packages ${missing[*]}: install them (e.g. sudo apt-get install ${missing[*]}) and rerun" >&2
        exit 2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# screenshots and other artefacts of the browser tests land here
export NOVASTRESS_TEST_ARTIFACTS="${NOVASTRESS_TEST_ARTIFACTS:-$PWD/test-artifacts}"
mkdir -p "$NOVASTRESS_TEST_ARTIFACTS"
if [ "$#" -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi

started=$SECONDS
status=0
# the fast suite in two pytest processes side by side, each its own gevent-patched interpreter
# (pytest-xdist cannot host gevent's monkey-patching): its tests mostly wait on locust, cloud,
# sshd and browser subprocesses, so two halves end in about the time of the longer one. The
# second half's output follows the first's. Each part ends with its slowest tests (--durations),
# what to move between the halves when one grows.
second_half=(tests/race tests/distributed tests/webui)
second_log="$NOVASTRESS_TEST_ARTIFACTS/fast-suite-second-half.log"
.venv/bin/python -m pytest --durations=12 "${second_half[@]}" > "$second_log" 2>&1 &
second_pid=$!
ignored=(--ignore=tests/realcloud)
for part in "${second_half[@]}"; do ignored+=("--ignore=$part"); done
.venv/bin/python -m pytest --durations=12 "${ignored[@]}" || status=$?
wait "$second_pid" || status=$?
echo "--- the second half of the fast suite: ${second_half[*]}"
cat "$second_log"
echo "fast suite: $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"

# the real-cloud tier: the stack is started here, outside pytest's per-test timeout (the
# first time it installs for minutes); if it cannot start, the tier's fixture fails with why.
# A stack this script starts starts fresh: no earlier run's servers, volumes or allocations
# (its state directory outlives the checkout); one that runs already is the operator's
tier=$SECONDS
already_up=0
.venv/bin/novastress-realnova status >/dev/null 2>&1 && already_up=1
fresh=--fresh
[ "$already_up" = 1 ] && fresh=
.venv/bin/novastress-realnova up $fresh || echo "novastress-realnova up failed; the real-cloud tier will say why"
.venv/bin/python -m pytest --durations=12 tests/realcloud -o timeout=900 || status=$?
# a stack this script started is stopped again; one that was running is left running
[ "$already_up" = 1 ] || .venv/bin/novastress-realnova down
echo "real-cloud tier (with novastress-realnova up): $(( (SECONDS - tier) / 60 )) min $(( (SECONDS - tier) % 60 )) s"
exit "$status"
